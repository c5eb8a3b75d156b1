"""The DL4DS OOD test set: 19 files `distortionNN.npy`, checked and memory-mapped (never read whole).

Full layout: each file uint8 (50000, 32, 32, 3), 153,600,128 bytes; rows (s-1)*10000 … s*10000-1 are
severity s. A reduced layout (5·n rows, n images per severity, the same n in every file) is accepted for
tests and generated subsets.

    python -m robustness.ood check data/ood-test [--sha256] [--checksums FILE]
    python -m robustness.ood download data/ood-test
"""
from __future__ import annotations

import hashlib
import os
import sys

import numpy as np

from trainables.errors import DataError, UserError

OOD_FILES = tuple(f"distortion{i:02d}.npy" for i in range(19))
# Which corruption each DL4DS file holds: DL4DS_ORDER[i] is in OOD_FILES[i]. This is a fact about the files, not
# the suite's list (trainables/corruption_table.NAMES, the same 19 names, checked by tests/test_ood.py). We take
# the CIFAR-100-C generator order (hendrycks/robustness make_cifar_c.py); that distortionNN follows it is likely,
# not proven (CHALLENGE.md): per-corruption numbers on the real files carry that caveat. robustness.generate
# writes its files in this order too, so generated sets and the DL4DS files are read alike.
DL4DS_ORDER = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)
FULL_N = 10000  # images per severity in the real files (the CIFAR-100 test set)
FULL_BYTES = 153_600_128  # 128-byte .npy header + 50000*32*32*3
# What the course's starter code downloads (GitHub redirects it to the Git LFS media server).
BASE_URL = "https://github.com/DL4DS/ood-test-files/raw/refs/heads/main/ood-test/"
# The Git LFS pointers of DL4DS/ood-test-files (commit fd4617f7aabd2e07ee0c614486bd2bfb342b4cc4): oid sha256.
SHA256 = dict(zip(OOD_FILES, (
    "776391036473e944144809983ce9cb0c7831593e84a1be7cf29ccc72f194a120",
    "4d661214412045f79fdbc8a5095506e8682a883bcb61693dc17b48a9f7d7a51b",
    "7dcf455178224fb63c956d2f2bd50c1da71c57671ac7f7238610752f91a23e84",
    "134ab1cb3765e4551b7ee121f099c8dafb88c096f45deee5bee98e96a16c0d61",
    "4c612859c74e1cf1751763eddaaf55e742650f4f9c67b8321faf47e524707d5b",
    "cb2d7dc6dcbabf3f0ac198397186846ec57985a6c4f4dab10999f17835555233",
    "f0c746dec1c23438fa4e22a90e18eed7b6b96b71fd35776cad709b163bef0a56",
    "359b96dc23af57c3210fefbd37a007576e8190ac492881920d475517e0ee5647",
    "9ca999b14435f20b60412cdf9c4d054bad563d656d80cf71795f0a9a3d2271d2",
    "0a8c65f809028fd7867271988932477e3efb7d781a367927f28674076389bc20",
    "5a81b1cb9365e6ce853fca57740a4156c6b724e97d95b0673df3820ee2056ab9",
    "a838439f52a70006cf20825ef78c59b25574ff77689a97f69056df50e272dddb",
    "690437cd574582378fbd57b25923b87d39f7069166e7a319beec6e5b612e2aab",
    "4fa41f887ffeccc2ab0c3c235345c8dfd8e19d0fcb3cd104d5a274d5ba4d337d",
    "97d3e7fa79f231b4423901965a8f7a992e22831e99735e7cd3bb8bdfbd3ab892",
    "a2b4023cd3126fe90c2fca620f27314fcb1b82c88d16344c3a82345db27221ba",
    "3b86a720346874b218f2f06a3527b56039a4b9a55c624ea021d9efc78ab01a59",
    "73053d163a221d61f7c2840a11bad9ee001e256af5ce737a4a69e6551f2b7c1b",
    "8212ef47526c11d851f74eff306948e77dbca72b0229b8ba4d9890f40bf72c27",
)))


def missing_message(directory: str, missing: list[str]) -> str:
    return (f"{len(missing)} of {len(OOD_FILES)} OOD files missing in '{directory}': {', '.join(missing)}. "
            f"Download each from {BASE_URL}<name> (e.g. `python -m robustness.ood download {directory}` "
            f"where there is internet) and put it at {os.path.join(directory, '<name>')}")


def read_header(path: str) -> tuple[tuple, np.dtype, bool, int]:
    """(shape, dtype, fortran_order, data offset) of a .npy file, reading only its header."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {version} (np.save writes 1.0)")
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            return shape, dtype, fortran, f.tell()
    except (ValueError, OSError, SyntaxError) as exc:
        raise DataError(f"OOD file '{path}' is not a readable .npy file ({exc}); download it again") from None


def check_file(path: str, n: int | None = None) -> int:
    """Validate one distortion file's header and byte size without reading its pixels; return n."""
    shape, dtype, fortran, offset = read_header(path)
    if dtype != np.uint8 or fortran:
        raise DataError(f"OOD file '{path}' holds {dtype}{' (Fortran order)' if fortran else ''}, expected uint8")
    if len(shape) != 4 or shape[1:] != (32, 32, 3) or shape[0] % 5 or shape[0] == 0:
        raise DataError(f"OOD file '{path}' has shape {shape}, expected (5*n, 32, 32, 3) (n=10000 for the real set)")
    if n is not None and shape[0] != 5 * n:
        raise DataError(f"OOD file '{path}' has {shape[0]} images, the other files {5 * n}: the set is mixed up")
    want = offset + int(np.prod(shape))
    size = os.path.getsize(path)
    if size != want:
        raise DataError(f"OOD file '{path}' is {size:,} bytes, its header says {want:,}: truncated or damaged; "
                        f"download it again")
    return shape[0] // 5


def sha256_of(path: str, chunk: int = 1 << 23) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_checksums(path: str) -> dict[str, str]:
    """`sha256sum` output (`<hash>  <name>` per line) -> {basename: hash}."""
    try:
        with open(path) as f:
            pairs = [line.split() for line in f if line.strip()]
    except OSError as exc:
        raise UserError(f"checksum file '{path}' could not be read: {exc}") from None
    if any(len(p) != 2 or len(p[0]) != 64 for p in pairs):
        raise UserError(f"checksum file '{path}' must hold lines '<sha256>  <file name>' (sha256sum format)")
    return {os.path.basename(name.lstrip("*")): digest.lower() for digest, name in pairs}


def check_ood_dir(directory: str, verify_sha256: bool = False, checksums: dict[str, str] | str | None = None,
                  names: tuple[str, ...] = OOD_FILES) -> list[np.memmap]:
    """Validate the 19 files and return them memory-mapped, in distortion order.

    verify_sha256 hashes each file (about 1 s per file) against the published LFS hashes, or against
    `checksums` (a {name: sha256} dict or a sha256sum-style file) for sets that are not the real one.
    """
    if not os.path.isdir(directory):
        raise DataError(missing_message(directory, list(names)).replace("missing in", "missing: no directory"))
    missing = [name for name in names if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise DataError(missing_message(directory, missing))
    n = None
    for name in names:
        n = check_file(os.path.join(directory, name), n)
    if verify_sha256:
        table = read_checksums(checksums) if isinstance(checksums, str) else (checksums or SHA256)
        if table is SHA256 and n != FULL_N:
            raise DataError(f"the published checksums are for the full files (10000 images per severity); "
                            f"'{directory}' has {n}: pass checksums= for this set")
        for name in names:
            if name not in table:
                raise DataError(f"no checksum given for '{name}'")
            if sha256_of(os.path.join(directory, name)) != table[name].lower():
                raise DataError(f"OOD file '{os.path.join(directory, name)}' fails its sha256 check: damaged or "
                                f"not the published file; download it again")
    return [np.load(os.path.join(directory, name), mmap_mode="r") for name in names]


def download_ood(directory: str, **kw) -> list[str]:
    """Fetch the missing files (resumable, verified); see robustness.download.download_ood."""
    from .download import download_ood as fetch

    return fetch(directory, **kw)


def images_per_severity(arrays) -> int:
    """n of a list of (5n, 32, 32, 3) arrays (validated the same way as files)."""
    sizes = {len(a) for a in arrays}
    if len(sizes) != 1 or next(iter(sizes)) % 5 or any(a.shape[1:] != (32, 32, 3) for a in arrays):
        raise DataError(f"OOD arrays must all be (5*n, 32, 32, 3); got {sorted({a.shape for a in arrays})}")
    return sizes.pop() // 5


def main(argv=None) -> int:
    from trainables import cli

    p = cli.parser("python -m robustness.ood", "Check or download the DL4DS OOD files.")
    p.add_argument("action", choices=("check", "download"))
    p.add_argument("directory")
    p.add_argument("--sha256", action="store_true", help="check: also verify sha256 (≈20 s for the real set)")
    p.add_argument("--checksums", help="sha256sum-style file to check against instead of the published hashes")
    args = p.parse_args(argv)

    def run() -> int:
        if args.action == "download":  # verifies what it fetches; files already there are checked below
            download_ood(args.directory, progress=lambda msg: print(msg, file=sys.stderr))
        arrays = check_ood_dir(args.directory, args.sha256, args.checksums)
        print(f"ok: {len(arrays)} files, {images_per_severity(arrays)} images per severity in '{args.directory}'")
        return 0

    return cli.run(run, after_interrupt="A download resumes from its .part file when run again")


if __name__ == "__main__":
    sys.exit(main())
