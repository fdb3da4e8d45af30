"""Model answers that arrived while the database was unreachable, kept on local disk.

They stay until the database is back, so that each is paid once.

A model call is reserved in the ledger before it is made and settled after. When the answer
arrives but its settlement cannot be written because the database stayed unreachable past
the outage timeout, the run pauses (`database_unreachable: …`) and the answer would be lost:
the resumed run repeats the node from its last checkpoint and pays for the same call again.
Instead the answer is written here, with its ledger call id. When the resumed run makes the
same request (same model, messages and tools, which the node rebuilds from the same
checkpoint), the seam takes the held answer instead of calling the model, settles the
original reservation with the usage the provider reported, and deletes the file.

Invariants:
- One file per held answer: `<workspace root>/.enduro-held/<thread id>/<request key>.json`,
  outside every thread's workspace (the file tools never see it), written atomically (a
  temporary file, then a rename), so a crash leaves either no file or a whole one.
- The key is the SHA-256 of the model name, the messages and the tool schemas: a different
  request never takes another's answer.
- A held answer is used at most once; its ledger row stays charged at its reservation until
  then. It lives on the machine that received it: a thread resumed elsewhere calls the model
  again (and pays again), as it did before answers were held.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, messages_from_dict, messages_to_dict
from langchain_core.outputs import ChatGeneration, ChatResult

log = logging.getLogger(__name__)

HELD_DIR = ".enduro-held"


def request_key(model: str, messages: Sequence[BaseMessage], tools: Sequence[Any]) -> str:
    """A stable key of one model request.

    Args:
        model: the model name the call is made with.
        messages: the request's messages.
        tools: the tool schemas sent with it (OpenAI function format).

    Returns:
        A hex SHA-256 of all three.
    """
    payload = json.dumps(
        [model, messages_to_dict(list(messages)), list(tools)], sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class HeldAnswer:
    """An answer the provider gave (and billed) whose ledger row is not settled yet.

    Attributes:
        call_id: the ledger row reserved for the call.
        worst_nano: the reservation, in nano-dollars (what the row is charged until settled).
        message: the model's answer, with the usage the provider reported.
    """

    call_id: str
    worst_nano: int
    message: AIMessage


class AnswerSpool:
    """The held answers of one thread.

    Args:
        workspace: the workspace root (`EnduroContext.workspace`); answers go to a directory
            beside the threads' own.
        thread_id: the thread.
    """

    def __init__(self, workspace: str | os.PathLike[str], thread_id: str) -> None:
        self.dir = Path(workspace) / HELD_DIR / thread_id

    def _path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    async def hold(self, key: str, answer: HeldAnswer) -> None:
        """Keep `answer` for the request `key` (overwrites a held answer of that key)."""
        body = json.dumps(
            {
                "call_id": answer.call_id,
                "worst_nano": answer.worst_nano,
                "message": messages_to_dict([answer.message])[0],
            }
        )
        await asyncio.to_thread(self._write, self._path(key), body)
        log.warning(
            "kept the model's answer to call %s on disk (%s) until the database is back",
            answer.call_id,
            self._path(key),
        )

    async def take(self, key: str) -> HeldAnswer | None:
        """The held answer of request `key`, or None. It stays on disk until `forget`."""
        path = self._path(key)
        try:
            text = await asyncio.to_thread(path.read_text)
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            message = messages_from_dict([data["message"]])[0]
            if not isinstance(message, AIMessage):
                raise TypeError(f"held message is a {type(message).__name__}")
            return HeldAnswer(str(data["call_id"]), int(data["worst_nano"]), message)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable held answer %s: %s", path, exc)
            return None

    async def forget(self, key: str) -> None:
        """Delete the held answer of `key` (after it was settled and used)."""
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    @staticmethod
    def _write(path: Path, body: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


class ReplayModel(BaseChatModel):
    """A chat model that answers with one held message.

    A held answer goes through the same `bind_tools` / structured-output parsing as the provider's
    answer did.
    """

    message: AIMessage

    @property
    def _llm_type(self) -> str:
        return "enduro-replay"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        """The tools were sent with the original call; the held answer already uses them."""
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop)
