"""Issue #10 against a live service: crafted ids touch nothing, image bombs cost nothing, every
reply is addressed, a fetch subscribes, a dead worker is replaced, a stop interrupts cleanly,
and after each case the service still serves the next job."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from client_events import events_until
from videoscene_backend.service import results, start_in_thread
from videoscene_protocol.client import (
    BackendClient,
    ErrorEvent,
    ProgressEvent,
    StateEvent,
)
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.wire import Message, encode

from .conftest import RELEASE
from .test_fuzz import load_fuzzer

FUZZ = load_fuzzer()


def serves_the_next_job(address: str) -> None:
    client = BackendClient(address)
    client.connect(timeout_s=20)
    assert client.wait(client.submit("echo", {"next": 1}), timeout_s=20).meta == {
        "params": {"next": 1}
    }
    client.close()


def raw_socket(address: str) -> zmq.Socket:
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    return socket


def replies(socket: zmq.Socket, until, timeout_s: float = 10.0) -> list[dict]:
    """Envelopes received (heartbeats skipped) until `until(envelopes)` holds."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if socket.poll(50):
            envelope = json.loads(socket.recv_multipart()[0])
            if envelope["type"] != "heartbeat":
                seen.append(envelope)
                if until(seen):
                    return seen
    raise AssertionError(f"no such reply; saw {seen}")


# ---- crafted ids ------------------------------------------------------------------------------
@pytest.mark.parametrize("crafted", FUZZ.CRAFTED_IDS)
def test_a_crafted_job_id_touches_nothing(tmp_path, service, client, crafted: str) -> None:
    out = service.service.output_dir
    stored = client.submit("echo", {"keep": True})
    client.wait(stored, timeout_s=20)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("mine")
    before = sorted(p.name for p in (out / "jobs").iterdir())
    socket = raw_socket(service.address)
    for kind in ("submit", "fetch", "cancel"):
        msg_id = FUZZ.new_id()
        body = {"kind": "echo", "params": {}} if kind == "submit" else {}
        socket.send_multipart(FUZZ.frames_of(FUZZ.envelope(kind, msg_id, crafted, body)))
        [error] = replies(socket, lambda seen: seen[-1]["type"] == "error")
        assert error["body"]["code"] == "bad_message" and error["body"]["reply_to"] == msg_id
        assert error["job_id"] is None  # the crafted id is never echoed
    socket.close()
    assert (victim / "precious.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "jobs").iterdir()) == before
    client.fetch(stored)
    assert client.wait(stored, timeout_s=20).meta == {"params": {"keep": True}}
    serves_the_next_job(service.address)


@pytest.mark.parametrize("crafted", FUZZ.CRAFTED_IDS)
def test_paths_refuse_crafted_ids_even_past_the_wire(tmp_path, crafted: str) -> None:
    (tmp_path / "out" / "jobs").mkdir(parents=True)
    for build in (results.final_dir, results.partial_dir):
        with pytest.raises(VideoSceneError) as info:
            build(tmp_path / "out", crafted)
        assert info.value.code == ErrorCode.BAD_MESSAGE
    assert results.read_record(tmp_path / "out", crafted) is None


def test_a_link_out_of_the_jobs_folder_is_refused_and_one_inside_is_replaced(tmp_path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "jobs").mkdir(parents=True)
    outside.mkdir()
    (outside / "precious.txt").write_text("mine")
    (out / "jobs" / "escape").symlink_to(outside, target_is_directory=True)
    error = VideoSceneError(ErrorCode.CANCELLED, "x")
    with pytest.raises(VideoSceneError):
        results.write_failure(out, "escape", "echo", error, "cancelled")
    assert (outside / "precious.txt").read_text() == "mine"
    kept = results.write_failure(out, "kept", "echo", error, "cancelled")
    (out / "jobs" / "alias").symlink_to(Path(kept["job_dir"]), target_is_directory=True)
    results.write_failure(out, "alias", "echo", error, "failed")
    assert not (out / "jobs" / "alias").is_symlink()  # the link was replaced, not followed
    assert results.read_record(out, "kept")["state"] == "cancelled"


def test_a_crafted_scene_id_is_refused(service, client) -> None:
    from videoscene_backend.scene.store import SceneStore

    with pytest.raises(VideoSceneError) as info:
        SceneStore().put(object(), "../../scene")
    assert info.value.code == ErrorCode.BAD_PARAMS
    job = client.submit("render_video", {"scene_id": "../x"})
    with pytest.raises(VideoSceneError) as info:
        client.wait(job, timeout_s=20)
    assert info.value.code == ErrorCode.BAD_PARAMS
    serves_the_next_job(service.address)


# ---- image bombs ------------------------------------------------------------------------------
BOMBS = FUZZ.image_bombs()


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_image_bombs_are_bad_image(service, client, name: str) -> None:
    blobs = {"image_0": BOMBS[name], "image_1": FUZZ.real_png()}
    with pytest.raises(VideoSceneError) as info:
        client.wait(client.submit("build_scene", {"prior": "stereo"}, blobs=blobs), timeout_s=60)
    assert info.value.code == ErrorCode.BAD_IMAGE and info.value.hint
    serves_the_next_job(service.address)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmHWM from /proc")
def test_image_bombs_cost_little_memory_and_time() -> None:
    """All the bombs decoded in a fresh process: its peak resident memory (VmHWM: this
    process's own, unlike ru_maxrss, which a forked child inherits) stays far below what one
    bomb cost before the header checks (2-4 GB)."""
    script = (
        "import re, sys, time\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from videoscene_backend.pipeline.images import decode_image\n"
        "from videoscene_protocol.errors import VideoSceneError\n"
        "import fuzz\n"
        "start = time.perf_counter()\n"
        "for name, blob in fuzz.image_bombs().items():\n"
        "    try:\n"
        "        decode_image(blob, name)\n"
        "        raise SystemExit(f'{name} was decoded')\n"
        "    except VideoSceneError as error:\n"
        "        assert error.code == 'bad_image', (name, error)\n"
        "status = open('/proc/self/status').read()\n"
        "peak_kb = re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)\n"
        "print(peak_kb, time.perf_counter() - start)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(Path(FUZZ.__file__).parent)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    peak_kb, seconds = done.stdout.split()
    assert int(peak_kb) < 400 * 1024, f"peak {int(peak_kb) // 1024} MB"
    assert float(seconds) < 60


def test_opencv_gets_our_pixel_limit_before_it_loads() -> None:
    script = (
        "import videoscene_backend, cv2, numpy as np\n"
        "from videoscene_backend.pipeline.image_limits import MAX_PIXELS\n"
        "side = int(MAX_PIXELS ** 0.5) + 1\n"
        "png = cv2.imencode('.png', np.zeros((side, side), np.uint8))[1]\n"
        "try:\n"
        "    cv2.imdecode(png, cv2.IMREAD_UNCHANGED)\n"
        "    print('decoded')\n"
        "except cv2.error:\n"
        "    print('refused')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.stdout.strip() == "refused", done.stderr


def test_sixteen_bit_and_grey_and_alpha_pngs_still_decode() -> None:
    import cv2
    from videoscene_backend.pipeline.images import decode_image

    deep = np.arange(96 * 80 * 3, dtype=np.uint16).reshape(80, 96, 3) * 7
    decoded = decode_image(cv2.imencode(".png", deep)[1].tobytes(), "deep")
    expected = cv2.cvtColor((deep / 257).round().astype(np.uint8), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decoded, expected)
    for pixels in (np.zeros((70, 90), np.uint8), np.zeros((70, 90, 4), np.uint8)):
        assert decode_image(cv2.imencode(".png", pixels)[1].tobytes(), "x").shape == (70, 90, 3)


# ---- addressed replies ------------------------------------------------------------------------
ENVELOPE_CASES = FUZZ._envelope_cases()


@pytest.mark.parametrize(
    ("note", "code", "build"), ENVELOPE_CASES, ids=[case[0] for case in ENVELOPE_CASES]
)
def test_malformed_envelopes_get_their_code_addressed(service, note, code, build) -> None:
    msg_id, job_id = FUZZ.new_id(), FUZZ.new_id()
    head = f'{{"protocol":"videoscene","version":"1.0","msg_id":"{msg_id}","job_id":"{job_id}",'
    socket = raw_socket(service.address)
    socket.send_multipart(build(msg_id, job_id, head))
    [error] = replies(socket, lambda seen: seen[-1]["type"] == "error")
    socket.close()
    assert error["body"]["code"] == code and error["body"]["hint"]
    assert error["body"]["reply_to"] == msg_id
    if job_id in build(msg_id, job_id, head)[0].decode("utf-8", "replace"):
        assert error["job_id"] == job_id
    serves_the_next_job(service.address)


def test_a_message_over_the_size_limit_is_answered_with_its_ids(tmp_path, handlers) -> None:
    handle = start_in_thread(tmp_path / "out", max_message_bytes=10_000)
    try:
        socket = raw_socket(handle.address)
        message = Message("submit", body={"kind": "echo"}, job_id="j1", blobs={"b": b"x" * 5000})
        socket.send_multipart(encode(message) + [b"y" * 6000])
        [error] = replies(socket, lambda seen: seen[-1]["type"] == "error")
        socket.close()
        assert error["body"]["code"] == "message_too_large"
        assert error["body"]["reply_to"] == message.msg_id and error["job_id"] == "j1"
        serves_the_next_job(handle.address)
    finally:
        handle.stop()


def test_every_direct_reply_carries_reply_to(service) -> None:
    socket = raw_socket(service.address)
    job = FUZZ.new_id()
    requests = [
        Message("hello"),
        Message("status"),
        Message("release_models"),
        Message("submit", body={"kind": "slow", "params": {}}, job_id=job),
        Message("fetch", job_id=job),
        Message("cancel", job_id=job),
    ]
    for request in requests:
        socket.send_multipart(encode(request))
        seen = replies(socket, lambda s, r=request: s[-1]["body"].get("reply_to") == r.msg_id)
        assert seen[-1]["type"] != "error", seen[-1]
        if request.job_id:
            assert seen[-1]["job_id"] == job
    if seen[-1]["type"] == "accepted":  # it was running: "cancelled" follows when it stops
        replies(socket, lambda s: s[-1]["type"] == "cancelled" and s[-1]["job_id"] == job)
    done = FUZZ.new_id()
    socket.send_multipart(encode(Message("fetch", job_id=job, msg_id=done)))
    [stored] = replies(socket, lambda s: s[-1]["body"].get("reply_to") == done)[-1:]
    assert stored["type"] == "cancelled" and stored["job_id"] == job  # from disk, addressed
    socket.close()


def test_a_duplicate_job_id_is_refused_addressed(client, service) -> None:
    job = client.submit("echo", {})
    client.wait(job, timeout_s=20)
    socket = raw_socket(service.address)
    message = Message("submit", body={"kind": "echo", "params": {}}, job_id=job)
    socket.send_multipart(encode(message))
    [error] = replies(socket, lambda seen: seen[-1]["type"] == "error")
    socket.close()
    assert error["body"]["code"] == "bad_message" and error["job_id"] == job
    assert error["body"]["reply_to"] == message.msg_id


def test_concurrent_weights_checks_share_one_check(service) -> None:
    socket = raw_socket(service.address)
    requests = [Message("check_weights") for _ in range(5)]
    for request in requests:
        socket.send_multipart(encode(request))
    wanted = {request.msg_id for request in requests}
    seen = replies(
        socket,
        lambda s: wanted <= {e["body"].get("reply_to") for e in s if e["type"] == "weights_report"},
        timeout_s=120,
    )
    socket.close()
    assert all(e["type"] == "weights_report" for e in seen)
    assert not [t for t in threading.enumerate() if t.name == "videoscene-check-weights"][1:]
    serves_the_next_job(service.address)


def test_a_weights_check_asked_as_the_last_one_ends_is_answered(service) -> None:
    """The check's thread can still be alive after its report reached the loop (a loaded
    machine deschedules it between the two): a request arriving then starts a check of its own
    instead of waiting on one that has already answered (the fuzz test's unanswered flake)."""
    release = threading.Event()
    check = service.service._check_weights

    def check_then_linger() -> None:
        check()
        release.wait(60)  # the report is in the loop's outbox; the thread has not ended yet

    service.service._check_weights = check_then_linger
    socket = raw_socket(service.address)
    try:
        for _ in range(2):
            request = Message("check_weights")
            socket.send_multipart(encode(request))
            seen = replies(
                socket,
                lambda s, wanted=request.msg_id: s[-1]["body"].get("reply_to") == wanted,
                timeout_s=120,
            )
            assert seen[-1]["type"] == "weights_report"
    finally:
        release.set()
        socket.close()


# ---- watchers ---------------------------------------------------------------------------------
def test_a_second_client_fetching_a_running_job_watches_it_too(service) -> None:
    first, second = BackendClient(service.address), BackendClient(service.address)
    first.connect()
    second.connect()
    job = first.submit("slow", {})
    events_until(first, lambda e: isinstance(e, ProgressEvent) and e.job_id == job)
    second.fetch(job)
    state = events_until(second, lambda e: isinstance(e, StateEvent) and e.job_id == job)
    assert [e.state for e in state if isinstance(e, StateEvent)] == ["running"]
    events_until(second, lambda e: isinstance(e, ProgressEvent) and e.job_id == job)
    events_until(first, lambda e: isinstance(e, ProgressEvent) and e.job_id == job)
    RELEASE.set()
    assert first.wait(job, timeout_s=20).meta["steps"] > 0  # the submitter keeps its result
    assert second.wait(job, timeout_s=20).meta["steps"] > 0
    first.close()
    second.close()
    serves_the_next_job(service.address)


def test_cancelling_a_queued_job_tells_every_watcher(service) -> None:
    first, second = BackendClient(service.address), BackendClient(service.address)
    first.connect()
    second.connect()
    running = first.submit("slow", {})
    queued = first.submit("slow", {})
    events_until(first, lambda e: isinstance(e, StateEvent) and e.job_id == queued)
    second.fetch(queued)
    events_until(second, lambda e: isinstance(e, StateEvent) and e.job_id == queued)
    second.cancel(queued)
    for client in (first, second):
        events_until(
            client,
            lambda e: isinstance(e, StateEvent) and e.job_id == queued and e.state == "cancelled",
        )
    RELEASE.set()
    first.wait(running, timeout_s=20)
    first.close()
    second.close()


# ---- a worker that dies -----------------------------------------------------------------------
def dying_job(ctx, request):
    raise SystemExit("the handler ended its thread")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_is_replaced_and_its_job_failed(service, client, monkeypatch) -> None:
    from videoscene_backend.pipeline import registry

    monkeypatch.setitem(registry.HANDLERS, "die", dying_job)
    job = client.submit("die", {})
    with pytest.raises(VideoSceneError) as info:
        client.wait(job, timeout_s=20)
    assert info.value.code == ErrorCode.INTERNAL and "worker thread died" in info.value.message
    assert client.status()["worker"] == {"alive": True, "restarts": 1}
    assert results.read_record(service.service.output_dir, job)["code"] == "internal"
    serves_the_next_job(service.address)


def test_handler_failures_outside_the_science_still_answer(service, client, monkeypatch) -> None:
    """A result that cannot be stored (NaN in meta, an unsafe file name) fails its job, named."""
    from videoscene_backend.pipeline import registry
    from videoscene_backend.pipeline.contract import JobOutput

    monkeypatch.setitem(
        registry.HANDLERS, "nan", lambda ctx, r: JobOutput(meta={"loss": float("nan")})
    )
    monkeypatch.setitem(
        registry.HANDLERS, "unsafe", lambda ctx, r: JobOutput(blobs={"../escape": b"x"})
    )
    for kind in ("nan", "unsafe"):
        with pytest.raises(VideoSceneError) as info:
            client.wait(client.submit(kind, {}), timeout_s=20)
        assert info.value.code == ErrorCode.INTERNAL
    assert not (service.service.output_dir / "escape").exists()
    serves_the_next_job(service.address)


# ---- stopping and restarting --------------------------------------------------------------------
def test_a_stop_interrupts_queued_and_running_jobs_and_a_restart_reports_them(
    tmp_path, handlers
) -> None:
    out = tmp_path / "out"
    handle = start_in_thread(out, tmp_path / "checkpoints")
    client = BackendClient(handle.address)
    client.connect()
    running, queued = client.submit("slow", {}), client.submit("slow", {})
    seen = events_until(client, lambda e: isinstance(e, ProgressEvent) and e.job_id == running)
    if not any(isinstance(e, StateEvent) and e.job_id == queued for e in seen):
        events_until(client, lambda e: isinstance(e, StateEvent) and e.job_id == queued)
    handle.stop()
    assert not handle.thread.is_alive()
    told = events_until(
        client, lambda e: isinstance(e, ErrorEvent) and e.job_id == running, timeout_s=20
    )
    codes = {e.job_id: e.error.code for e in told if isinstance(e, ErrorEvent) and e.job_id}
    assert codes == {running: ErrorCode.INTERRUPTED, queued: ErrorCode.INTERRUPTED}
    client.close()
    assert not list((out / "jobs" / ".submitted").iterdir())
    restarted = start_in_thread(out, tmp_path / "checkpoints")
    try:
        again = BackendClient(restarted.address)
        again.connect()
        for job in (running, queued):
            again.fetch(job)
            with pytest.raises(VideoSceneError) as info:
                again.wait(job, timeout_s=20)
            assert info.value.code == ErrorCode.INTERRUPTED
        again.close()
        serves_the_next_job(restarted.address)
    finally:
        restarted.stop()


def test_start_up_reports_journalled_jobs_and_removes_orphan_work(tmp_path, handlers) -> None:
    """What a crash leaves: journal entries of a queued and a running job, their work folders,
    a half-written journal entry, and folders that are not ours."""
    from videoscene_backend.service import journal

    out = tmp_path / "out"
    (out / "jobs").mkdir(parents=True)
    journal.record_submitted(out, "queuedjob", "echo")
    journal.record_submitted(out, "runningjob", "slow", "running")
    work = results.partial_dir(out, "runningjob")
    work.mkdir()
    (work / "frame.npy").write_bytes(b"\0" * 1000)
    results.partial_dir(out, "longgone").mkdir()
    (out / "jobs" / ".submitted" / "torn.json.tmp").write_text("{")
    (out / "jobs" / "not-ours.partial.txt").write_text("keep")
    handle = start_in_thread(out, tmp_path / "checkpoints")
    try:
        jobs = out / "jobs"
        assert not list(jobs.glob(".*.partial")) and not list((jobs / ".submitted").iterdir())
        assert (jobs / "not-ours.partial.txt").read_text() == "keep"
        for job, when in (("queuedjob", "before it started"), ("runningjob", "while it ran")):
            record = results.read_record(out, job)
            assert record["code"] == "interrupted" and when in record["message"]
        serves_the_next_job(handle.address)
    finally:
        handle.stop()


def test_an_interrupted_render_keeps_the_frames_it_finished(tmp_path, handlers) -> None:
    """A render killed after its first window: after the restart the job reads as interrupted
    and its ready frames are still served; the rest of its work folder is gone."""
    from videoscene_backend.pipeline.frame_store import FrameManifest, FrameWriter
    from videoscene_backend.service import journal

    out = tmp_path / "out"
    (out / "jobs").mkdir(parents=True)
    journal.record_submitted(out, "killedrender", "render_video", "running")
    work = results.partial_dir(out, "killedrender")
    writer = FrameWriter(work, FrameManifest(4, 64, 48, ["coarse"]))
    for index in range(2):
        writer.write("coarse", index, np.full((48, 64, 3), 40 * index, np.uint8))
    writer.mark_ready(2, 2)
    (work / "coarse" / ".000002.png.tmp").write_bytes(b"half a frame")
    (work / "scene_cache.npy").write_bytes(b"\0" * 1000)
    handle = start_in_thread(out, tmp_path / "checkpoints")
    client = BackendClient(handle.address)
    try:
        client.connect()
        record = results.read_record(out, "killedrender")
        assert record["code"] == "interrupted"
        folder = Path(record["job_dir"])
        assert sorted(p.name for p in folder.iterdir()) == ["coarse", "error.json", "frames.json"]
        assert sorted(p.name for p in (folder / "coarse").iterdir()) == ["000000.png", "000001.png"]
        frames = client.fetch_frames("killedrender", 0, 2, "coarse").frames
        assert len(frames) == 2
        with pytest.raises(VideoSceneError) as info:
            client.fetch_frames("killedrender", 2, 1, "coarse")
        assert info.value.code == ErrorCode.NOT_READY
        serves_the_next_job(handle.address)
    finally:
        client.close()
        handle.stop()


def test_a_second_backend_on_the_same_folder_refuses_to_start(tmp_path, service) -> None:
    with pytest.raises(VideoSceneError) as info:
        start_in_thread(service.service.output_dir, tmp_path / "checkpoints")
    assert info.value.code == ErrorCode.BAD_PARAMS and "--output-dir" in info.value.hint
    serves_the_next_job(service.address)


# ---- param nonsense (checked against the params spec before any work) -------------------------
NONSENSE = [("render_video", params) for params in FUZZ.RENDER_NONSENSE] + [
    ("build_scene", params) for params in FUZZ.BUILD_NONSENSE
]


@pytest.mark.parametrize(("kind", "nonsense"), NONSENSE, ids=[json.dumps(p) for _, p in NONSENSE])
def test_param_nonsense_is_bad_params_and_the_service_goes_on(
    tmp_path, service, client, kind, nonsense
):
    params = {"scene_id": "nosuchscene", **nonsense} if kind == "render_video" else nonsense
    arrays = {"c2w": np.eye(4)[None], "K": np.eye(3)[None]} if kind == "render_video" else {}
    blobs = (
        {"image_0": FUZZ.real_png(), "image_1": FUZZ.real_png()} if kind == "build_scene" else {}
    )
    job = client.submit(kind, params, arrays=arrays, blobs=blobs)
    with pytest.raises(VideoSceneError) as info:
        client.wait(job, timeout_s=30)
    assert info.value.code == ErrorCode.BAD_PARAMS, info.value
    # Refused at submit, before it queued: no job record, no journal entry, no work folder.
    assert [p.name for p in (tmp_path / "out" / "jobs").rglob("*") if job in p.name] == []
    serves_the_next_job(service.address)
