import pytest

from aimctrl.discovery.errors import ImageNotFoundError
from aimctrl.discovery.oci import Descriptor, Platform, PlatformSpec, select_platform


def _entry(name: str, os: str, arch: str, variant: str | None = None) -> Descriptor:
    return Descriptor(
        media_type="m",
        digest=f"sha256:{name}",
        size=1,
        platform=PlatformSpec(os=os, architecture=arch, variant=variant),
    )


ARM = _entry("arm", "linux", "arm64", "v8")
AMD = _entry("amd", "linux", "amd64")
AMD_V3 = _entry("amdv3", "linux", "amd64", "v3")
AMD_V2 = _entry("amdv2", "linux", "amd64", "v2")
ATTEST = _entry("att", "unknown", "unknown")
WIN = _entry("win", "windows", "amd64")
X86 = _entry("x86", "linux", "x86_64")


@pytest.mark.parametrize(
    ("entries", "want", "chosen"),
    [
        ([ARM, AMD, ATTEST], Platform(), "amd"),
        ([ATTEST, WIN, AMD], Platform(), "amd"),
        ([AMD_V3, AMD, AMD_V2], Platform(), "amd"),
        ([AMD_V3, AMD_V2], Platform(), "amdv2"),
        ([AMD, AMD_V3], Platform(variant="v3"), "amdv3"),
        ([AMD, AMD_V2], Platform(variant="v4"), "amd"),
        ([X86], Platform(), "x86"),
        ([AMD, ARM], Platform(architecture="arm64"), "arm"),
    ],
)
def test_platform_selection(entries, want, chosen):
    assert select_platform(entries, want).digest == f"sha256:{chosen}"


def test_missing_platform_lists_what_the_index_offers():
    with pytest.raises(ImageNotFoundError, match=r"no linux/amd64 entry .*linux/arm64/v8"):
        select_platform([ARM, ATTEST, WIN])


@pytest.mark.parametrize(
    ("text", "platform"),
    [("linux/amd64", Platform()), ("linux/aarch64/v8", Platform("linux", "arm64", "v8"))],
)
def test_platform_parse(text, platform):
    assert Platform.parse(text) == platform
    with pytest.raises(ValueError, match="os/architecture"):
        Platform.parse("amd64")
