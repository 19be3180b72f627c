"""fetch_url against a local HTTP mirror of the EMPIAR layout (127.0.0.1, never the network):
exact bytes, resume with a Range request, restart when the server ignores the range, 416,
retries on 503, no retry on 404, sha256/size checks that name the URL and both values,
nothing the user had is touched, and no partial file under the final name at any moment."""

from __future__ import annotations

import hashlib
import logging
import threading
import time

import numpy as np
import pytest

from cryo_pipeline.io.fetch import ChecksumMismatchError, FetchError, fetch_url, part_path, sha256_file

PATH = "/empiar/world_availability/10045/data/ribosomes/Tomograms/05/IS002_291013_005.mrcs"
DATA = np.random.default_rng(7).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(DATA).hexdigest()
QUICK = {"backoff_s": 0.0, "timeout_s": 10.0, "progress": False}


@pytest.fixture
def mirror(http_mirror):
    http_mirror.files[PATH] = DATA
    return http_mirror


def _ranges(mirror) -> list[str | None]:
    return [headers.get("Range") for _, headers in mirror.requests]


def test_download_gives_the_exact_bytes_and_their_sum(mirror, tmp_path):
    dest = tmp_path / "resources" / "ribo" / "IS002_291013_005.mrcs"
    result = fetch_url(mirror.url(PATH), dest, sha256=SHA, size_bytes=len(DATA), **QUICK)
    assert dest.read_bytes() == DATA
    assert (result.sha256, result.size_bytes, result.downloaded, result.attempts) == (SHA, len(DATA), True, 1)
    assert result.resumed_from_bytes == 0 and not part_path(dest).exists()
    assert _ranges(mirror) == [None]
    assert mirror.requests[0][1]["User-Agent"].startswith("cryo_pipeline/")


def test_interrupted_download_resumes_on_the_next_run(mirror, tmp_path):
    dest = tmp_path / "ts.mrcs"
    mirror.drop_after[PATH] = [100_000]
    with pytest.raises(FetchError) as caught:
        fetch_url(mirror.url(PATH), dest, sha256=SHA, retries=0, **QUICK)
    message = str(caught.value)
    assert mirror.url(PATH) in message and "1 attempt(s)" in message and "run again to resume" in message
    assert "the connection ended after 100000 of 300000 bytes" in message
    assert not dest.exists()
    assert part_path(dest).read_bytes() == DATA[:100_000]
    result = fetch_url(mirror.url(PATH), dest, sha256=SHA, retries=0, **QUICK)
    assert _ranges(mirror) == [None, "bytes=100000-"]
    assert dest.read_bytes() == DATA and result.sha256 == SHA
    assert result.resumed_from_bytes == 100_000 and not part_path(dest).exists()


def test_a_dropped_connection_is_retried_and_resumed_in_one_call(mirror, tmp_path):
    dest = tmp_path / "ts.mrcs"
    mirror.drop_after[PATH] = [50_000, 120_000]  # two drops: 50 000 bytes, then 120 000 more
    result = fetch_url(mirror.url(PATH), dest, sha256=SHA, retries=2, **QUICK)
    assert _ranges(mirror) == [None, "bytes=50000-", "bytes=170000-"]
    assert dest.read_bytes() == DATA
    assert (result.attempts, result.resumed_from_bytes) == (3, 170_000)


def test_a_server_ignoring_the_range_restarts_from_zero(mirror, tmp_path):
    dest = tmp_path / "ts.mrcs"
    part_path(dest).write_bytes(b"stale bytes of another file")
    mirror.ignore_range = True
    result = fetch_url(mirror.url(PATH), dest, sha256=SHA, **QUICK)
    assert _ranges(mirror) == ["bytes=27-"]  # asked to resume, got the whole file (200)
    assert dest.read_bytes() == DATA and result.resumed_from_bytes == 0


def test_416_with_a_complete_part_finishes_without_downloading(mirror, tmp_path):
    dest = tmp_path / "ts.mrcs"
    part_path(dest).write_bytes(DATA)
    result = fetch_url(mirror.url(PATH), dest, sha256=SHA, **QUICK)
    assert _ranges(mirror) == [f"bytes={len(DATA)}-"]
    assert dest.read_bytes() == DATA and result.resumed_from_bytes == len(DATA)


def test_416_with_an_oversized_part_starts_again(mirror, tmp_path):
    dest = tmp_path / "ts.mrcs"
    part_path(dest).write_bytes(DATA + b"junk")
    fetch_url(mirror.url(PATH), dest, sha256=SHA, **QUICK)
    assert _ranges(mirror) == [f"bytes={len(DATA) + 4}-", None]
    assert dest.read_bytes() == DATA


def test_checksum_mismatch_names_the_url_and_both_sums_and_removes_only_the_download(mirror, tmp_path):
    dest = tmp_path / "ts.mrcs"
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatchError) as caught:
        fetch_url(mirror.url(PATH), dest, sha256=wrong.upper(), **QUICK)
    message = str(caught.value)
    assert message.startswith(f"sha256 mismatch for {mirror.url(PATH)}: expected {wrong}, got {SHA}; ")
    assert not dest.exists() and not part_path(dest).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_users_file_that_does_not_match_is_left_untouched(mirror, tmp_path):
    dest = tmp_path / "ts.mrcs"
    mine = b"the user's own file, not what the server has"
    dest.write_bytes(mine)
    with pytest.raises(ChecksumMismatchError) as caught:
        fetch_url(mirror.url(PATH), dest, sha256=SHA, **QUICK)
    message = str(caught.value)
    assert mirror.url(PATH) in message and SHA in message and hashlib.sha256(mine).hexdigest() in message
    assert "it was left as it is" in message
    assert dest.read_bytes() == mine and not part_path(dest).exists()
    assert mirror.requests == []  # nothing was downloaded


def test_a_present_file_that_matches_is_kept_without_a_download(mirror, tmp_path, caplog):
    dest = tmp_path / "ts.mrcs"
    dest.write_bytes(DATA)
    with caplog.at_level(logging.INFO, logger="cryo_pipeline.io.fetch"):
        result = fetch_url(mirror.url(PATH), dest, sha256=SHA, size_bytes=len(DATA), **QUICK)
    assert not result.downloaded and result.sha256 == SHA and result.attempts == 0
    assert mirror.requests == []
    assert f"{dest} is already present and matches" in caplog.text


def test_a_present_file_without_checksum_is_kept_and_logged(mirror, tmp_path, caplog):
    dest = tmp_path / "ts.mrcs"
    mine = b"already here"
    dest.write_bytes(mine)
    with caplog.at_level(logging.INFO, logger="cryo_pipeline.io.fetch"):
        result = fetch_url(mirror.url(PATH), dest, **QUICK)
    assert dest.read_bytes() == mine and not result.downloaded
    assert result.sha256 == hashlib.sha256(mine).hexdigest()
    assert "no sha256 or size to check it against; it is kept" in caplog.text
    assert mirror.requests == []


def test_404_names_the_url_and_is_not_retried(mirror, tmp_path):
    url = mirror.url("/empiar/world_availability/10045/data/absent.mrcs")
    with pytest.raises(FetchError) as caught:
        fetch_url(url, tmp_path / "absent.mrcs", retries=3, **QUICK)
    assert str(caught.value) == (f"download of {url} failed: HTTP 404 Not Found; check the URL in the dataset sheet")
    assert len(mirror.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_503_is_retried_then_the_download_succeeds(mirror, tmp_path, caplog):
    mirror.fail_with[PATH] = [503, 503]
    dest = tmp_path / "ts.mrcs"
    with caplog.at_level(logging.WARNING, logger="cryo_pipeline.io.fetch"):
        result = fetch_url(mirror.url(PATH), dest, sha256=SHA, retries=3, **QUICK)
    assert dest.read_bytes() == DATA and result.attempts == 3
    assert len(mirror.requests) == 3
    assert caplog.text.count("HTTP 503 Service Unavailable; retry") == 2


def test_gives_up_after_the_retries_naming_the_url(mirror, tmp_path):
    mirror.fail_with[PATH] = [503] * 5
    with pytest.raises(FetchError) as caught:
        fetch_url(mirror.url(PATH), tmp_path / "ts.mrcs", retries=2, **QUICK)
    assert str(caught.value).startswith(
        f"download of {mirror.url(PATH)} failed after 3 attempt(s): HTTP 503 Service Unavailable; 0 bytes are kept")
    assert len(mirror.requests) == 3


def test_wrong_size_fails_before_downloading(mirror, tmp_path):
    dest = tmp_path / "ts.mrcs"
    with pytest.raises(ChecksumMismatchError) as caught:
        fetch_url(mirror.url(PATH), dest, size_bytes=len(DATA) + 1, **QUICK)
    assert str(caught.value) == (f"size mismatch for {mirror.url(PATH)}: expected {len(DATA) + 1} bytes, "
                                 f"the source has {len(DATA)}; nothing was downloaded")
    assert not dest.exists() and not part_path(dest).exists()


def test_size_is_checked_after_the_download_when_the_server_does_not_announce_it(mirror, tmp_path):
    mirror.send_length = False
    dest = tmp_path / "ts.mrcs"
    with pytest.raises(ChecksumMismatchError) as caught:
        fetch_url(mirror.url(PATH), dest, size_bytes=len(DATA) - 1, **QUICK)
    assert str(caught.value) == (f"size mismatch for {mirror.url(PATH)}: expected {len(DATA) - 1} bytes, got "
                                 f"{len(DATA)}; the download {part_path(dest)} was removed and {dest} not created")
    assert list(tmp_path.iterdir()) == []
    assert fetch_url(mirror.url(PATH), dest, size_bytes=len(DATA), **QUICK).sha256 == SHA


def test_no_partial_file_under_the_final_name_at_any_moment(mirror, tmp_path):
    dest = tmp_path / "ts.mrcs"
    mirror.chunk_delay_s = 0.01  # 20 slices, ~0.2 s
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if dest.exists():
                seen.append(dest.stat().st_size)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        fetch_url(mirror.url(PATH), dest, sha256=SHA, **QUICK)
        while not seen:  # the watcher's first look after the download (an event, not a time window)
            time.sleep(0.001)
    finally:
        done.set()
        watcher.join()
    assert seen and set(seen) == {len(DATA)}  # the final name only ever held the whole file


def test_progress_goes_to_the_log(mirror, tmp_path, caplog):
    mirror.chunk_delay_s = 0.002
    with caplog.at_level(logging.INFO, logger="cryo_pipeline.io.fetch"):
        fetch_url(mirror.url(PATH), tmp_path / "ts.mrcs", log_every_s=0.0, chunk_bytes=65536, **QUICK)
    assert f"{mirror.url(PATH)}: 0.3 MiB of 0.3 MiB (100%)" in caplog.text
    assert f"fetched {mirror.url(PATH)} → {tmp_path / 'ts.mrcs'} (0.3 MiB, sha256 {SHA})" in caplog.text


def test_file_urls_and_local_paths_are_copied_and_checked(tmp_path):
    source = tmp_path / "mirror" / "ts 1.mrcs"
    source.parent.mkdir()
    source.write_bytes(DATA)
    by_url = fetch_url(source.as_uri(), tmp_path / "a" / "ts.mrcs", sha256=SHA, **QUICK)
    by_path = fetch_url(str(source), tmp_path / "b" / "ts.mrcs", sha256=SHA, **QUICK)
    assert (tmp_path / "a" / "ts.mrcs").read_bytes() == DATA == (tmp_path / "b" / "ts.mrcs").read_bytes()
    assert by_url.sha256 == by_path.sha256 == SHA == sha256_file(source)
    part = part_path(tmp_path / "c" / "ts.mrcs")
    part.parent.mkdir()
    part.write_bytes(DATA[:1000])  # a local copy resumes too
    assert fetch_url(str(source), tmp_path / "c" / "ts.mrcs", sha256=SHA, **QUICK).resumed_from_bytes == 1000
    with pytest.raises(FileNotFoundError, match=rf"^{tmp_path / 'absent.mrcs'} does not exist \(the source "):
        fetch_url(str(tmp_path / "absent.mrcs"), tmp_path / "d.mrcs", **QUICK)
