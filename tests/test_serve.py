"""``qrewrite serve``: a real uvicorn server on a free localhost port, real httpx clients, a real browser.

The tiny Qwen2 is re-initialised with large random weights ("lively") so that its greedy output depends on the
question: then an answer that went to the wrong request, or a batch that leaked padding, shows. Expected
answers are the project's batched path (rewrite_batch) run directly on the same questions.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLE, run_cli

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

QUESTIONS = [r["input"] for r in json.loads((SAMPLE / "valid.json").read_text())][:40]
MAX_NEW = 12


# ---- fixtures and helpers ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lively_dir(tiny_model, tmp_path_factory) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out = tmp_path_factory.mktemp("lively") / "tiny-qwen2-lively"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def backend(lively_dir):
    from qrewrite.serve.engine import load_backend
    return load_backend(str(lively_dir), max_new_tokens=MAX_NEW, precision="fp32")


@pytest.fixture(scope="module")
def expected(backend) -> dict:
    """question -> its rewrite on the batched path, all in one direct rewrite_batch call."""
    from qrewrite.infer.generate import rewrite_batch
    got = rewrite_batch(backend.model, backend.tokenizer, QUESTIONS, max_new_tokens=MAX_NEW, prefix=backend.prefix)
    assert len(set(got)) == len(QUESTIONS)  # distinct answers, so a mix-up between requests would show
    return dict(zip(QUESTIONS, got))


@contextmanager
def running(app):
    """Serve ``app`` with uvicorn in a thread on a free 127.0.0.1 port (bound here: no race for the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def app_for(backend, **settings):
    from qrewrite.serve.app import create_app
    from qrewrite.serve.options import Settings
    return create_app(backend, Settings(**settings))


async def post_all(url: str, bodies: list, headers=None) -> list:
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=200)) as client:
        return await asyncio.gather(*(client.post("/v1/rewrite", json=b, headers=headers) for b in bodies))


def wait_for(predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- prompt lookup -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["stock", "lively"])
def test_prompt_lookup_equals_plain_greedy_token_for_token(which, tiny_model, lively_dir):
    """Stock init repeats itself, so drafts are accepted (fewer forward passes); lively depends on the input."""
    import torch

    from qrewrite.infer.generate import PromptLookup
    from qrewrite.models import load_for_inference
    model, tok, _ = load_for_inference(str(tiny_model if which == "stock" else lively_dir), precision="fp32")
    assert next(model.parameters()).dtype == torch.float32
    calls = [0]
    model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    forwards, outputs = {}, {}
    for n in (0, 10):
        calls[0] = 0
        lookup = PromptLookup(model, tok, None, max_new_tokens=40, prompt_lookup_tokens=n)
        outputs[n] = [lookup.ids(q).tolist() for q in QUESTIONS[:6]]
        forwards[n] = calls[0]
    assert outputs[10] == outputs[0]
    assert all(len(o) == 40 for o in outputs[0]) or which == "lively"
    assert forwards[0] == sum(len(o) for o in outputs[0])  # plain greedy: one pass per token
    if which == "stock":
        assert forwards[10] < forwards[0] / 2  # several tokens accepted per pass
    else:
        assert len({tuple(o) for o in outputs[0]}) == 6


def test_backend_single_path_is_prompt_lookup_and_agrees_with_batch(backend, expected):
    from qrewrite.infer.generate import PromptLookup
    assert backend.prompt_lookup_tokens > 0
    for q in QUESTIONS[:4]:
        assert backend.rewrite_one(q) == expected[q]
    ids = PromptLookup(backend.model, backend.tokenizer, None, max_new_tokens=MAX_NEW).ids(QUESTIONS[0])
    assert backend.tokenizer.decode(ids, skip_special_tokens=True).strip() == expected[QUESTIONS[0]]


def test_a_backend_decodes_as_told_one_question_as_a_batch_of_one(lively_dir, backend, expected, monkeypatch):
    from qrewrite.infer.decoding import Decoding
    from qrewrite.infer.generate import PromptLookup
    from qrewrite.infer.rewriter import load_rewriter
    from qrewrite.serve import engine as serving
    bonus = Decoding(copy_bonus=5.0)
    boosted = serving.load_backend(str(lively_dir), max_new_tokens=MAX_NEW, precision="fp32", decoding=bonus)
    direct = load_rewriter(str(lively_dir), max_new_tokens=MAX_NEW, precision="fp32", decoding=bonus)
    assert boosted.decoding == "greedy, copy bonus 5.0" and backend.decoding == "greedy"
    monkeypatch.setattr(PromptLookup, "ids", lambda *a, **k: pytest.fail("prompt lookup used with a copy bonus"))
    got = [boosted.rewrite_one(q) for q in QUESTIONS[:6]]
    assert got == [direct.rewrite_batch([q])[0] for q in QUESTIONS[:6]] == boosted.rewrite(QUESTIONS[:6])
    assert got != [expected[q] for q in QUESTIONS[:6]]  # the bonus changed what the model says
    with running(app_for(boosted)) as url:
        assert httpx.get(f"{url}/health").json()["decoding"] == "greedy, copy bonus 5.0"
        assert httpx.post(f"{url}/v1/rewrite", json={"question": QUESTIONS[0]}).json()["rewrites"] == got[:1]


def test_lone_question_by_bf16_prompt_lookup_while_batches_stay_on_the_model(lively_dir, backend, expected):
    import torch

    from qrewrite.errors import ConfigError
    from qrewrite.infer.decoding import Decoding
    from qrewrite.serve.engine import load_backend
    mixed = load_backend(str(lively_dir), max_new_tokens=MAX_NEW, precision="fp32", lone_question="prompt-lookup-bf16")
    bf16 = load_backend(str(lively_dir), max_new_tokens=MAX_NEW, precision="bf16")
    assert next(mixed.model.parameters()).dtype == torch.float32
    assert next(mixed.lone.model.parameters()).dtype == torch.bfloat16 and mixed.lone.model is not mixed.model
    assert bf16.lone.model is bf16.model  # a bf16 model is not loaded twice
    bf16_lone_too = load_backend(str(lively_dir), max_new_tokens=MAX_NEW, precision="bf16",
                                 lone_question="prompt-lookup-bf16")
    assert bf16_lone_too.lone.model is bf16_lone_too.model
    assert (mixed.lone_question, backend.lone_question) == ("prompt lookup (bfloat16)", "prompt lookup (float32)")
    calls = []
    forward = mixed.lone.model.forward
    mixed.lone.model.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    got = [mixed.rewrite_one(q) for q in QUESTIONS[:6]]
    assert calls and got == [bf16.rewrite_one(q) for q in QUESTIONS[:6]]  # the same tokens as the bf16 model's
    calls.clear()
    assert mixed.rewrite(QUESTIONS[:6]) == [expected[q] for q in QUESTIONS[:6]] and not calls  # batches: fp32
    with running(app_for(mixed)) as url:
        assert httpx.get(f"{url}/health").json()["lone_question"] == "prompt lookup (bfloat16)"
        assert httpx.post(f"{url}/v1/rewrite", json={"question": QUESTIONS[0]}).json()["rewrites"] == got[:1]
    with pytest.raises(ConfigError, match="reproduces greedy decoding"):
        load_backend(str(lively_dir), decoding=Decoding(num_beams=2), lone_question="prompt-lookup-bf16")
    with pytest.raises(ConfigError, match="baseline with no model"):
        load_backend("copy", lone_question="prompt-lookup-bf16")
    assert load_backend("copy").lone_question is None
    plain = load_backend(str(lively_dir), max_new_tokens=MAX_NEW, precision="fp32", prompt_lookup_tokens=0)
    assert plain.lone_question == "plain greedy (float32)"


def test_copy_backend_and_model_names(tmp_path):
    from qrewrite.serve.engine import load_backend, model_name
    copy = load_backend("copy")
    assert copy.name == "copy" and copy.rewrite(["a ", "b"]) == ["a ", "b"] and copy.rewrite_one("x?") == "x?"
    assert copy.decoding is None
    run = tmp_path / "my-run"
    (run / "model").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    assert model_name(str(run)) == model_name(str(run / "model")) == "my-run"
    assert model_name("smollm2") == "smollm2"


# ---- the API -----------------------------------------------------------------------------------------------

def test_concurrent_requests_get_their_own_answers_in_order(backend, expected):
    singles = [{"question": q} for q in QUESTIONS]
    multis = [{"questions": QUESTIONS[i:i + 3][::-1]} for i in range(0, 30, 3)]
    with running(app_for(backend, batch_size=8, max_wait_ms=20)) as url:
        responses = asyncio.run(post_all(url, singles + multis))
        health = httpx.get(f"{url}/health").json()
    for body, r in zip(singles + multis, responses):
        assert r.status_code == 200, r.text
        asked = [body["question"]] if "question" in body else body["questions"]
        got = r.json()
        assert got["rewrites"] == [expected[q] for q in asked]
        assert got["model"] == "tiny-qwen2-lively" and got["ms"] >= 0
    assert health["rewritten"] == len(singles) + 30 and health["pending"] == 0
    assert health["batches"] < health["rewritten"]  # questions of concurrent requests were rewritten together


def test_health_page_and_docs(backend):
    with running(app_for(backend)) as url:
        health = httpx.get(f"{url}/health")
        page = httpx.get(url + "/")
        docs = httpx.get(f"{url}/docs")
        schema = httpx.get(f"{url}/openapi.json").json()
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["model"] == "tiny-qwen2-lively"
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="question"' in page.text and "v1/rewrite" in page.text
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/v1/rewrite" in schema["paths"] and "/health" in schema["paths"]


BIG = {"question": "x" * 300_000}


def bad_requests():
    """(name, request kwargs, status, words the JSON message must contain) with the limits of `limited`."""
    j = {"headers": {"content-type": "application/json"}}
    return [
        ("malformed JSON", dict(content=b'{"question": "x"', **j), 422, ["not valid JSON"]),
        ("not UTF-8", dict(content=b'{"question": "\xff\xfe"}', **j), 422, ["not valid JSON"]),
        # whether 2,000 levels exceed the JSON parser's recursion limit depends on the Python build: either
        # way it is a 422 with a message (not valid JSON, or a body that is not an object)
        ("nested too deep", dict(content=b"[" * 2000 + b"]" * 2000, **j), 422, []),
        ("no body", dict(**j), 422, ["body is missing"]),
        ("body a list", dict(json=["What?"]), 422, ["body"]),
        ("body a string", dict(json="What?"), 422, ["body"]),
        ("body null", dict(content=b"null", **j), 422, ["body"]),
        ("not JSON content type", dict(content=b"What?", headers={"content-type": "text/plain"}), 422, ["body"]),
        ("question a number", dict(json={"question": 5}), 422, ["question", "string"]),
        ("question NaN", dict(content=b'{"question": NaN}', **j), 422, ["question"]),
        ("questions a string", dict(json={"questions": "What?"}), 422, ["questions", "list"]),
        ("questions item a number", dict(json={"questions": ["What?", 3]}), 422, ["questions.1"]),
        ("neither field", dict(json={}), 422, ["'question'", "'questions'"]),
        ("both fields", dict(json={"question": "a?", "questions": ["b?"]}), 422, ["exactly one"]),
        ("unknown field", dict(json={"question": "a?", "temperature": 2}), 422, ["temperature"]),
        ("empty question", dict(json={"question": ""}), 422, ["question", "empty"]),
        ("whitespace question", dict(json={"question": " \n\t "}), 422, ["question", "whitespace"]),
        ("empty list", dict(json={"questions": []}), 422, ["questions"]),
        ("blank item", dict(json={"questions": ["What?", "  "]}), 422, ["questions.1", "empty"]),
        ("question too long", dict(json={"question": "w" * 201}), 422, ["question", "200 characters"]),
        ("item too long", dict(json={"questions": ["ok?", "w" * 201]}), 422, ["questions.1", "200 characters"]),
        ("too many questions", dict(json={"questions": ["q?"] * 9}), 422, ["questions", "8 items"]),
        ("body too large", dict(json=BIG), 413, ["4096 bytes"]),
        ("body too large, chunked", dict(content=iter([b'{"question": "', b"x" * 5000, b'"}']), **j), 413,
         ["4096 bytes"]),
    ]


def limited(backend):
    return app_for(backend, max_question_chars=200, max_questions=8, max_body_bytes=4096, max_queue=64)


@pytest.mark.parametrize("name,kwargs,status,words", bad_requests(), ids=[b[0] for b in bad_requests()])
def test_bad_request_is_a_json_error_naming_the_problem(name, kwargs, status, words, limited_url):
    r = httpx.post(f"{limited_url}/v1/rewrite", timeout=60, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body["message"], str) and body["message"]
    for w in words:
        assert w in body["message"], body["message"]
    if status == 422:
        assert body["errors"] and all(e["field"] and e["message"] for e in body["errors"])


@pytest.fixture(scope="module")
def limited_url(backend):
    with running(limited(backend)) as url:
        yield url


def test_wrong_method_and_unknown_path_are_json(limited_url):
    r = httpx.get(f"{limited_url}/v1/rewrite")
    assert r.status_code == 405 and r.json()["message"]
    r = httpx.post(f"{limited_url}/v1/nothing", json={"question": "x?"})
    assert r.status_code == 404 and r.json()["message"]


@pytest.mark.parametrize("path,status", [("/v1/rewrite", 413), ("/v1/chat/completions", 413), ("/v1/nothing", 404)])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_refused_5_mb_body_gets_its_json_answer_not_a_reset(limited_url, path, status, chunked):
    # the server answers before the body is in; unless it reads the rest first, closing the connection with
    # unread data resets it and the client sees "connection reset" instead of the JSON error
    body = b'{"question": "' + b"x" * 5_000_000 + b'"}'
    content = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    for _ in range(3):
        r = httpx.post(limited_url + path, content=content, timeout=60,
                       headers={"content-type": "application/json"})
        assert r.status_code == status, r.text
        assert r.json()["message"] and r.json()["error"]["code"] == status
        content = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    assert httpx.get(f"{limited_url}/health").json()["status"] == "ok"


def test_flood_of_bad_requests_leaves_the_server_working(limited_url, expected):
    def send(i):
        _, kwargs, status, _ = bad_requests()[i % len(bad_requests())]
        if "content" in kwargs and not isinstance(kwargs["content"], bytes):  # a generator is used up once
            kwargs = {**kwargs, "content": iter([b'{"question": "', b"x" * 5000, b'"}'])}
        with httpx.Client(base_url=limited_url, timeout=60) as c:
            return c.post("/v1/rewrite", **kwargs).status_code, status

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, range(12 * len(bad_requests()))))
    assert all(got == want for got, want in results)
    health = httpx.get(f"{limited_url}/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    r = httpx.post(f"{limited_url}/v1/rewrite", json={"question": QUESTIONS[5]}, timeout=60)
    assert r.status_code == 200 and r.json()["rewrites"] == [expected[QUESTIONS[5]]]


def test_full_queue_is_429_with_retry_after(backend, expected):
    # the batch waits 2 s for company, so the first request's 4 questions hold the whole queue meanwhile
    with running(app_for(backend, max_queue=4, max_questions=4, batch_size=32, max_wait_ms=2000)) as url:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, f"{url}/v1/rewrite", json={"questions": QUESTIONS[:4]}, timeout=60)
            wait_for(lambda: httpx.get(f"{url}/health").json()["pending"] == 4, "the first request to queue")
            refused = [httpx.post(f"{url}/v1/rewrite", json={"question": QUESTIONS[4]}) for _ in range(3)]
            assert first.result().status_code == 200
            assert first.result().json()["rewrites"] == [expected[q] for q in QUESTIONS[:4]]
        after = httpx.post(f"{url}/v1/rewrite", json={"question": QUESTIONS[4]}, timeout=60)
    for r in refused:
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert "queue is full" in r.json()["message"] and "limit 4" in r.json()["message"]
    assert after.status_code == 200 and after.json()["rewrites"] == [expected[QUESTIONS[4]]]


def test_request_past_its_timeout_is_503_and_its_work_is_dropped(backend):
    # timeout 50 ms < the 1 s the batch waits to fill: the request times out before any generation starts
    with running(app_for(backend, request_timeout_s=0.05, max_wait_ms=1000)) as url:
        r = httpx.post(f"{url}/v1/rewrite", json={"questions": QUESTIONS[:3]}, timeout=60)
        wait_for(lambda: httpx.get(f"{url}/health").json()["pending"] == 0, "the queue to empty")
        health = httpx.get(f"{url}/health").json()
    assert r.status_code == 503 and "timeout" in r.json()["message"]
    assert health["rewritten"] == 0 and health["batches"] == 0


def test_api_key_guards_every_route_but_health(backend):
    key = "s3cret-key"
    with running(app_for(backend, api_key=key)) as url:
        good = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{url}/health").status_code == 200
        for path in ("/", "/docs", "/openapi.json"):
            assert httpx.get(url + path).status_code == 401
            assert httpx.get(url + path, headers=good).status_code == 200
        for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": key},
                        {"Authorization": f"Basic {key}"}, {"Authorization": f"Bearer {key}x"}):
            r = httpx.post(f"{url}/v1/rewrite", json={"question": "x?"}, headers=headers)
            assert r.status_code == 401 and "API key" in r.json()["message"]
            assert r.headers["WWW-Authenticate"] == "Bearer"
        r = httpx.post(f"{url}/v1/rewrite", json={"question": QUESTIONS[0]}, headers=good, timeout=60)
        assert r.status_code == 200 and r.json()["rewrites"]
        chat = {"model": backend.name, "messages": [{"role": "user", "content": QUESTIONS[0]}]}
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.post(f"{url}/v1/chat/completions", json=chat).status_code == 401
        r = httpx.post(f"{url}/v1/chat/completions", json=chat, headers=good, timeout=60)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]


def test_api_key_from_the_environment(monkeypatch):
    from qrewrite.cli.main import build_parser
    from qrewrite.flags import from_args
    from qrewrite.serve.options import ServeOptions
    monkeypatch.setenv("QREWRITE_API_KEY", "from-env")
    opts = from_args(ServeOptions, build_parser().parse_args(["serve", "--model", "copy"]))
    assert opts.settings.api_key == "from-env" and opts.host == "127.0.0.1" and opts.settings.cors_origins == []
    serve_help = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    assert "--api-key" in serve_help and "from-env" not in serve_help  # the key is never shown as a default
    monkeypatch.delenv("QREWRITE_API_KEY")
    assert build_parser().parse_args(["serve", "--model", "copy"]).api_key is None


def test_no_cors_by_default_and_only_the_origins_given():
    from qrewrite.serve.engine import load_backend
    copy = load_backend("copy")
    preflight = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    with running(app_for(copy)) as url:
        r = httpx.post(f"{url}/v1/rewrite", json={"question": "x?"}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        assert "access-control-allow-origin" not in httpx.options(f"{url}/v1/rewrite", headers=preflight).headers
    with running(app_for(copy, cors_origins=["http://app.example"])) as url:
        ok = httpx.post(f"{url}/v1/rewrite", json={"question": "x?"}, headers={"Origin": "http://app.example"})
        other = httpx.post(f"{url}/v1/rewrite", json={"question": "x?"}, headers={"Origin": "http://evil.example"})
    assert ok.headers["access-control-allow-origin"] == "http://app.example"
    assert "access-control-allow-origin" not in other.headers


def test_threads_setting_applies_to_the_generation_thread():
    import torch

    class ThreadCount:  # answers with torch's thread count where the batcher runs generation
        name = "thread-count"

        def rewrite_one(self, question):
            return str(torch.get_num_threads())

    with running(app_for(ThreadCount(), threads=1)) as url:
        assert httpx.post(f"{url}/v1/rewrite", json={"question": "x?"}).json()["rewrites"] == ["1"]
    ThreadCount.engine = "ctranslate2"  # --threads is CTranslate2's then: torch keeps its own for prompt lookup
    fresh = []  # what torch gives a new thread where nobody set it
    thread = threading.Thread(target=lambda: fresh.append(str(torch.get_num_threads())))
    thread.start()
    thread.join()
    with running(app_for(ThreadCount(), threads=1)) as url:
        assert httpx.post(f"{url}/v1/rewrite", json={"question": "x?"}).json()["rewrites"] == fresh


def test_bad_settings_and_model_paths_are_clear_errors():
    r = run_cli("serve", "--model", "copy", "--max-questions", "10", "--max-queue", "5", timeout=120)
    assert r.returncode == 2 and "--max-questions" in r.stderr
    r = run_cli("serve", "--model", "copy", "--api-key", " ", timeout=120)
    assert r.returncode == 2 and "API key" in r.stderr
    r = run_cli("serve", "--model", "copy", "--threads", "0", timeout=120)
    assert r.returncode == 2 and "--threads" in r.stderr
    r = run_cli("serve", "--model", "rules", "--copy-bonus", "1", "--port", str(free_port()), timeout=120)
    assert r.returncode == 2 and "--model rules does not decode" in r.stderr
    r = run_cli("serve", "--model", "copy", "--num-beams", "0", timeout=120)
    assert r.returncode == 2 and "--num-beams" in r.stderr
    r = run_cli("serve", "--model", "no/such/dir", "--port", str(free_port()), timeout=300)
    assert r.returncode == 2 and "does not exist" in r.stderr


# ---- the command line: python -m qrewrite serve, and a clean shutdown ---------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_cli_serves_on_localhost_and_stops_cleanly_finishing_requests_in_flight(sig, lively_dir, expected,
                                                                                 tmp_path):
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "qrewrite", "serve", "--model", str(lively_dir), "--port",
                             str(port), "--max-new-tokens", str(MAX_NEW), "--precision", "fp32",
                             "--max-wait-ms", "1500"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"

    def health():
        try:
            return httpx.get(f"{url}/health").json()
        except httpx.TransportError:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            return None

    try:
        wait_for(lambda: health() is not None, "the server to start", timeout=300)
        with ThreadPoolExecutor(1) as pool:
            # the batch waits 1.5 s for company: the request is still in flight when the signal arrives
            inflight = pool.submit(httpx.post, f"{url}/v1/rewrite", json={"questions": QUESTIONS[:3]}, timeout=120)
            wait_for(lambda: (health() or {}).get("pending") == 3, "the request to be accepted")
            proc.send_signal(sig)
            r = inflight.result()
        # uvicorn re-raises the signal once it has shut down cleanly, so the exit status names it
        assert proc.wait(120) in (0, -sig)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    out = (tmp_path / "serve.log").read_text()
    assert r.status_code == 200 and r.json()["rewrites"] == [expected[q] for q in QUESTIONS[:3]]
    assert f"Uvicorn running on http://127.0.0.1:{port}" in out  # bound to localhost by default
    assert "Shutting down" in out and "Finished server process" in out
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health")


# ---- the page in a real browser ------------------------------------------------------------------------------

def test_page_in_headless_chromium_shows_the_rewrite(backend, expected, tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from serve_screenshot import INSTALL_HINT, chromium, find_browser, rewrite_in_page
    if find_browser() is None:
        pytest.skip(f"no headless browser for the page test: {INSTALL_HINT}")
    question = QUESTIONS[7]
    with running(app_for(backend)) as url, chromium() as driver:
        shown = rewrite_in_page(driver, url + "/", question)
        driver.save_screenshot(str(tmp_path / "page.png"))
    assert shown["error"] == ""
    assert shown["model"] == "tiny-qwen2-lively"
    assert shown["rewrite"] == expected[question]
    assert "ms on the server" in shown["time"]
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the benchmark's smoke mode -----------------------------------------------------------------------------

def test_bench_serve_smoke(tiny_model, tmp_path):
    r = run_cli(ROOT / "benchmarks" / "bench_serve.py", "--smoke", "--model", tiny_model, "--out", tmp_path,
                "--name", "serve_smoke", "--ct2-replicas", "2", timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((tmp_path / "serve_smoke.json").read_text())
    md = (tmp_path / "serve_smoke.md").read_text()
    assert "smoke run" in md and "p95" in md
    assert {"throughput_ratio_c32", "latency_ratio_single", "load", "single", "setup"} <= set(result)
    assert {"engine_throughput_ratio_c32", "engine_latency_ratio_single", "vs_transformers_serve_c32"} <= set(result)
    for server in ("batched", "ctranslate2", "ctranslate2_default_threads", "ctranslate2_fp32", "batched_bf16",
                   "unbatched", "transformers_serve_cb", "transformers_serve"):
        for c in result["setup"]["concurrency"]:
            run = result["load"][server][str(c)]
            assert run["ok"] == run["requests"] > 0 and run["errors"] == 0
            assert run["p50_ms"] <= run["p95_ms"]
    # every answer from the load was checked against the same questions rewritten directly
    assert result["load"]["batched"][str(max(result["setup"]["concurrency"]))]["answers_match"] is True
    assert set(result["single"]["sides"]) == {"plain_greedy", "prompt_lookup", "ctranslate2", "ctranslate2_fp32",
                                              "ctranslate2_default_threads", "ctranslate2_batch_of_one",
                                              "batched_bf16", "transformers_serve_cb"}
    assert result["load"]["ctranslate2_batch_of_one"] == {}  # asked one question at a time only
    # the ctranslate2 sides run with --ct2-threads (default 1) and --ct2-replicas, the default-threads side with
    # CTranslate2's own threads and one replica
    commands = result["setup"]["servers"]
    assert " ".join(commands["ctranslate2"]).endswith("--threads 1 --replicas 2 --lone-question prompt-lookup-bf16")
    assert " ".join(commands["ctranslate2_batch_of_one"]).endswith("--threads 1 --replicas 2")
    assert " ".join(commands["batched_bf16"]).endswith("--replicas 2 --precision bf16")
    assert "--threads" not in commands["ctranslate2_default_threads"]
    assert "--replicas" not in commands["ctranslate2_default_threads"]
    assert result["setup"]["ct2_quantization"] in ("int8", "int8_bfloat16")
    assert result["single"]["same_output"] is True
    assert result["throughput_ratio_c32"] > 0 and result["latency_ratio_single"] > 0
    assert result["bf16_throughput_ratio_c32"] > 0 and result["engine_batch_of_one_latency_ratio_single"] > 0


# ---- the OpenAI-compatible API -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def openai_url(backend):
    with running(app_for(backend, max_question_chars=200)) as url:
        yield url


def test_openai_client_gets_the_rewrite_of_the_batched_path(openai_url, backend, expected):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{openai_url}/v1", api_key="unused", max_retries=0, timeout=60)
    assert [m.id for m in client.models.list()] == [backend.name]

    def ask(q):
        return client.chat.completions.create(model=backend.name, messages=[{"role": "user", "content": q}],
                                              temperature=0, max_tokens=64, n=1)

    with ThreadPoolExecutor(8) as pool:  # concurrent requests share batches and still get their own answers
        answers = list(pool.map(ask, QUESTIONS[:16]))
    for q, a in zip(QUESTIONS[:16], answers):
        assert a.choices[0].message.content == expected[q] and a.choices[0].message.role == "assistant"
        assert a.choices[0].finish_reason == "stop" and a.model == backend.name
        assert a.usage.completion_tokens == len(backend.tokenizer(expected[q], add_special_tokens=False).input_ids)
        assert a.usage.prompt_tokens > 0 and a.usage.total_tokens == \
            a.usage.prompt_tokens + a.usage.completion_tokens
    parts = client.chat.completions.create(model=backend.name, messages=[
        {"role": "user", "content": [{"type": "text", "text": QUESTIONS[3]}]}])
    assert parts.choices[0].message.content == expected[QUESTIONS[3]]


def test_openai_max_tokens_cuts_the_rewrite(openai_url, backend, expected):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{openai_url}/v1", api_key="unused", max_retries=0, timeout=60)
    q = next(q for q in QUESTIONS if len(backend.tokenizer(expected[q], add_special_tokens=False).input_ids) > 3)
    a = client.chat.completions.create(model=backend.name, messages=[{"role": "user", "content": q}], max_tokens=2)
    ids = backend.tokenizer(expected[q], add_special_tokens=False).input_ids[:2]
    assert a.choices[0].finish_reason == "length" and a.usage.completion_tokens == 2
    assert a.choices[0].message.content == backend.tokenizer.decode(ids, skip_special_tokens=True).strip()


def openai_refusals(model):
    user = [{"role": "user", "content": "Who um who wrote it?"}]
    return [
        ("streaming", {"model": model, "messages": user, "stream": True}, 400, "stream"),
        ("sampling", {"model": model, "messages": user, "temperature": 0.7}, 400, "temperature"),
        ("top_p", {"model": model, "messages": user, "top_p": 0.5}, 400, "top_p"),
        ("n", {"model": model, "messages": user, "n": 3}, 400, "n must be 1"),
        ("system turn", {"model": model, "messages": [{"role": "system", "content": "Be nice."}] + user}, 400,
         "exactly one message"),
        ("assistant only", {"model": model, "messages": [{"role": "assistant", "content": "Hi"}]}, 400, "'user'"),
        ("empty content", {"model": model, "messages": [{"role": "user", "content": "  "}]}, 400, "empty"),
        ("too long", {"model": model, "messages": [{"role": "user", "content": "w" * 201}]}, 400, "200 characters"),
        ("other model", {"model": "gpt-4o", "messages": user}, 404, "not served here"),
        ("no messages", {"model": model, "messages": []}, 422, "messages"),
        ("no model", {"messages": user}, 422, "model"),
        ("unknown field", {"model": model, "messages": user, "tools": []}, 422, "tools"),
        ("bad role", {"model": model, "messages": [{"role": "robot", "content": "x"}]}, 422, "role"),
        ("max_tokens 0", {"model": model, "messages": user, "max_tokens": 0}, 422, "max_tokens"),
        ("content a number", {"model": model, "messages": [{"role": "user", "content": 5}]}, 422, "content"),
    ]


def test_openai_refusals_are_4xx_json_naming_the_field(openai_url, backend, expected):
    for name, body, status, words in openai_refusals(backend.name):
        r = httpx.post(f"{openai_url}/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == status, (name, r.text)
        error = r.json()["error"]
        assert words in error["message"] and r.json()["message"] == error["message"], (name, error)
    r = httpx.post(f"{openai_url}/v1/chat/completions", timeout=60, json={
        "model": backend.name, "messages": [{"role": "user", "content": QUESTIONS[7]}]})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == expected[QUESTIONS[7]]


def test_openai_client_raises_with_the_servers_message(openai_url, backend):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{openai_url}/v1", api_key="unused", max_retries=0, timeout=60)
    with pytest.raises(openai.BadRequestError, match="streaming is not supported"):
        client.chat.completions.create(model=backend.name, stream=True,
                                       messages=[{"role": "user", "content": "Who um who?"}])
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "Who um who?"}])
