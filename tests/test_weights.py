"""The weights stage: checkpoints are verified before they appear under resources/weights/."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pipeline.io import InputError  # noqa: E402
from pipeline.weights import fetch_weights  # noqa: E402


def checkpoint(path: Path) -> str:
    torch.save({"params_ema": {"conv.weight": torch.arange(6.0).reshape(2, 3)}}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_path_is_copied_and_verified(tmp_path):
    source = tmp_path / "model.pth"
    digest = checkpoint(source)
    out = fetch_weights("m", {"path": str(source), "sha256": digest}, tmp_path / "w" / "m.pth")
    assert out.read_bytes() == source.read_bytes()


def test_wrong_hash_leaves_nothing_behind(tmp_path):
    source = tmp_path / "model.pth"
    checkpoint(source)
    out = tmp_path / "w" / "m.pth"
    with pytest.raises(InputError, match=r"weights\.m\.sha256 pins"):
        fetch_weights("m", {"path": str(source), "sha256": "0" * 64}, out)
    assert list(out.parent.iterdir()) == []


def test_corrupt_checkpoint_is_refused(tmp_path):
    source = tmp_path / "model.pth"
    source.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InputError, match=r"model\.pth: not a loadable PyTorch checkpoint"):
        fetch_weights("m", {"path": str(source)}, tmp_path / "w" / "m.pth")
    assert not (tmp_path / "w" / "m.pth").exists()


def test_missing_file_says_where_to_put_it(tmp_path):
    out = tmp_path / "w" / "m.pth"
    with pytest.raises(
        InputError, match=r"put the file at .*m\.pth by hand, or set weights\.m\.path"
    ):
        fetch_weights("m", {"path": str(tmp_path / "absent.pth")}, out)


def test_url_is_downloaded_from_a_local_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    digest = checkpoint(served / "model.pth")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        out = fetch_weights("m", {"url": f"{url}/model.pth", "sha256": digest}, tmp_path / "m.pth")
        assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
        with pytest.raises(
            RuntimeError, match=r"(?s)checkpoint 'm'.*HTTP 404.*set weights\.m\.path"
        ):
            fetch_weights("m", {"url": f"{url}/missing.pth"}, tmp_path / "x.pth")
    finally:
        server.shutdown()
        server.server_close()
