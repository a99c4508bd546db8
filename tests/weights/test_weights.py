"""The weights stage: files fetched once over real HTTP (a local server), checked, recorded; jobs offline."""

import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest

from imgclf.core import runtime

runtime.configure(0, 1)

from imgclf.core.config import validate_config  # noqa: E402
from imgclf.core.errors import ImgclfError  # noqa: E402
from imgclf.training.models import build_model  # noqa: E402
from imgclf.training.weight_files import KerasWeightFile, keras_weight_file  # noqa: E402
from imgclf.weights import pretrained_architectures  # noqa: E402
from imgclf.weights import fetch_weights  # noqa: E402
from imgclf.weights.fetch import fetch_keras_weights  # noqa: E402

PAYLOAD = b"not really weights, but bytes with a known hash" * 1000


class Server:
    """A local HTTP server of one folder, counting the requests it answers."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                server.requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    (root / "keras").mkdir(parents=True)
    (root / "mirror").mkdir()
    (root / "keras" / "weights.h5").write_bytes(PAYLOAD)
    (root / "mirror" / "weights.h5").write_bytes(PAYLOAD)
    running = Server(root)
    yield running
    running.close()


def weight_file(server, file_hash=hashlib.sha256(PAYLOAD).hexdigest()):
    return KerasWeightFile("mobilenet_v3_small", "weights.h5", f"{server.url}/keras/weights.h5", file_hash, "models")


def test_a_file_is_downloaded_once_checked_and_recorded(server, tmp_path):
    cache = tmp_path / "cache"
    record = fetch_keras_weights(weight_file(server), cache)
    assert (cache / "weights.h5").read_bytes() == PAYLOAD
    assert record["sha256"] == hashlib.sha256(PAYLOAD).hexdigest() and record["downloaded"]
    assert record["url"] == f"{server.url}/keras/weights.h5"
    again = fetch_keras_weights(weight_file(server), cache)
    assert not again["downloaded"] and len(server.requests) == 1  # the cached file is reused
    assert sorted(p.name for p in cache.iterdir()) == ["weights.h5"]  # no temporary file left


def test_a_mirror_serves_the_same_file_names_and_md5_hashes_are_understood(server, tmp_path):
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    record = fetch_keras_weights(weight_file(server, md5), tmp_path / "cache", mirror=f"{server.url}/mirror/")
    assert record["url"] == f"{server.url}/mirror/weights.h5" and server.requests == ["/mirror/weights.h5"]


def test_a_file_of_another_hash_is_refused_and_not_kept(server, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ImgclfError, match="gave a file whose hash is not Keras's"):
        fetch_keras_weights(weight_file(server, "0" * 64), cache)
    assert list(cache.iterdir()) == []


def test_offline_the_error_names_the_file_its_url_and_where_to_put_it(server, tmp_path):
    missing = KerasWeightFile("mobilenet_v3_small", "absent.h5", f"{server.url}/keras/absent.h5", None, "models")
    with pytest.raises(ImgclfError, match=r"(?s)absent\.h5, from http://127\.0\.0\.1:\d+/keras/absent\.h5.*"
                                          r"put it at .*cache/absent\.h5"):
        fetch_keras_weights(missing, tmp_path / "cache")
    server.close()  # nothing listens any more: the network is gone
    with pytest.raises(ImgclfError, match="could not download the ImageNet weights of mobilenet_v3_small"):
        fetch_keras_weights(weight_file(server), tmp_path / "cache")
    assert not (tmp_path / "cache" / "weights.h5").exists()


def test_keras_names_its_own_file_without_any_download():
    wanted = keras_weight_file("mobilenet_v3_small", (64, 64, 3))
    assert wanted.fname.startswith("weights_mobilenet_v3_small") and wanted.fname.endswith(".h5")
    assert wanted.origin.startswith("https://") and wanted.origin.endswith(wanted.fname)
    assert wanted.file_hash and wanted.cache_subdir == "models"


def test_training_jobs_never_download_a_missing_file(tmp_path):
    config = validate_config({"model": {"architecture": "mobilenet_v3_small", "weights": "imagenet",
                                        "weights_cache": str(tmp_path / "empty")}})
    with pytest.raises(ImgclfError, match=r"(?s)weights_mobilenet_v3_small\S*\.h5 is not in the weights cache .*"
                                          r"empty.*run the fetch_weights job first.*https://"):
        build_model(config["model"], 2, (64, 64, 3))
    wanted = keras_weight_file("mobilenet_v3_small", (64, 64, 3))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / wanted.fname).write_bytes(b"damaged")
    with pytest.raises(ImgclfError, match="does not have the hash Keras pins"):
        build_model(config["model"], 2, (64, 64, 3))


def test_the_record_lists_efficientnet_lite0_converted_into_the_cache(tmp_path):
    config = validate_config({"model": {"architecture": "efficientnet_lite0", "weights": "imagenet",
                                        "weights_cache": str(tmp_path / "cache")}})
    record = fetch_weights(config["model"], config["explore"], config["tune"], [64, 64])["record"]
    [entry] = record["files"]
    assert Path(entry["path"]).parent == tmp_path / "cache" and Path(entry["path"]).is_file()
    assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
    assert entry["source_sha256"].startswith("57934424")
    default = validate_config({})
    assert fetch_weights(default["model"], default["explore"], default["tune"], [64, 64])["record"]["files"] == []


def test_every_backbone_exploration_or_tuning_may_choose_is_fetched():
    config = validate_config({
        "model": {"architecture": "efficientnet_lite0", "weights": "imagenet"},
        "explore": {"studies": [{"name": "backbone", "question": "which backbone?",
                                 "scientific": {"model.architecture": ["efficientnet_lite0", "mobilenet_v3_small"]}}]},
        "tune": {"enabled": True, "search_space": [
            {"name": "model.architecture", "type": "choice", "values": ["resnet50", "small_cnn"]}]}})
    assert pretrained_architectures(config) == ["efficientnet_lite0", "mobilenet_v3_small", "resnet50"]
    assert pretrained_architectures(validate_config({"model": {"architecture": "efficientnet_lite0"}})) == []
