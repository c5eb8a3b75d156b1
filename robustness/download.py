"""Download the DL4DS OOD files: resumable (HTTP Range into `name.part`), verified, then renamed into place.

A 2.9 GB download over a flaky link is the common case, so a failed or interrupted file resumes from its
`.part` on the next call instead of starting over; only a verified file ever gets its final name, so
`check_ood_dir` never sees half a file.
"""
from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request

from trainables import atomic
from trainables.errors import DataError

from .ood import BASE_URL, FULL_BYTES, OOD_FILES, SHA256, check_file, missing_message, sha256_of

LFS_POINTER = b"version https://git-lfs"


def _fetch(url: str, part: str, timeout: float, chunk: int, progress) -> None:
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing past what we hold: the .part is complete
            return
        raise
    with response:
        # 206 = the server honoured the Range; 200 = it sent the whole file again, so start over.
        resumed = response.status == 206 and response.headers.get("Content-Range", "").startswith(f"bytes {have}-")
        done = have if resumed else 0
        total = done + int(response.headers.get("Content-Length") or 0)
        with open(part, "ab" if resumed else "wb") as f:
            last = 0
            while block := response.read(chunk):
                f.write(block)
                done += len(block)
                if progress and done - last >= 16 * chunk:
                    progress(f"{os.path.basename(part)[:-5]}: {done / 1e6:.0f}/{total / 1e6:.0f} MB")
                    last = done


def _verify(part: str, name: str, checksums: dict[str, str] | None) -> None:
    with open(part, "rb") as f:
        if f.read(len(LFS_POINTER)) == LFS_POINTER:
            raise DataError(f"the server sent the Git LFS pointer of '{name}', not the file (GitHub's LFS bandwidth "
                            f"quota may be used up; try later or fetch the file with `git lfs pull`)")
    check_file(part)  # header, dtype, shape and byte size
    table = checksums if checksums is not None else (SHA256 if os.path.getsize(part) == FULL_BYTES else {})
    if name in table and sha256_of(part) != table[name].lower():
        raise DataError(f"'{name}' downloaded but fails its sha256 check")


def download_ood(directory: str, base_url: str = BASE_URL, names: tuple[str, ...] = OOD_FILES,
                 checksums: dict[str, str] | None = None, timeout: float = 60, attempts: int = 3,
                 chunk: int = 1 << 20, progress=None) -> list[str]:
    """Fetch every file of `names` not yet in `directory`; return the names fetched.

    Files already present are left alone (`check_ood_dir` validates them). Raises DataError naming the
    files still missing (offline, server error, failed check); their `.part` stays for the next try unless
    it failed verification.
    """
    os.makedirs(directory, exist_ok=True)
    fetched, failed = [], {}
    for name in names:
        final, part = os.path.join(directory, name), os.path.join(directory, name + ".part")
        if os.path.exists(final):
            continue
        for attempt in range(attempts):
            try:
                if progress:
                    progress(f"downloading {name} (try {attempt + 1}/{attempts})")
                _fetch(base_url + name, part, timeout, chunk, progress)
                break
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                failed[name] = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        else:
            continue
        try:
            _verify(part, name, checksums)
        except DataError as exc:
            os.remove(part)  # a bad file must not be resumed
            failed[name] = str(exc)
            continue
        failed.pop(name, None)
        atomic.publish(part, final)  # fsync + rename: the final name appears only for a verified file
        fetched.append(name)
    if failed:
        reasons = "; ".join(f"{name}: {why}" for name, why in failed.items())
        raise DataError(f"{missing_message(directory, list(failed))}. Reasons: {reasons}")
    return fetched
