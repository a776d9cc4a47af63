"""The torch decoder in worker processes: one model per process, requests over pipes.

Measured on an H200 (docs/results/gpu.md): with the decoder in the serving process a decode
step of the live run cost 70-100 ms instead of 2.3 ms (GPU busy 3 %). The per-batch profile
showed why: every batch brought tensor shapes not seen before, and each new shape cost 55-100 ms
the first time (a decoder thread that had seen a shape decoded it in 2-3 ms). Static shapes and
:meth:`asr.torch_backend.TorchWhisperDecoder.warm_up` remove that cost; cuDNN keeps its plans
per thread, so the warm-up must run on the thread that decodes. Here each process decodes on
its main thread and warms up there, before it reports ready; its decode loop's Python also
keeps off the GIL of the calls' threads.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from asr.turn_decoding import DecodeRequest
from asr.types import AsrError, Word

__all__ = ["DecoderProcesses"]


class DecoderProcesses:
    """``decode_batch`` served by ``count`` processes, each holding a TorchWhisperDecoder.

    Thread-safe: each call borrows an idle process (so ``count`` scheduler workers decode at
    once, one batch each). Every process warms up (per its config) before the constructor
    returns.
    """

    def __init__(self, transfer: str | Path, config: Any, count: int = 2) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a CUDA-initialised parent
        self._idle: queue.Queue[int] = queue.Queue()
        self._workers: list[tuple[Any, Connection]] = []
        self._locks = [threading.Lock() for _ in range(count)]
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(
                target=_serve, args=(child, str(transfer), config), daemon=True
            )
            process.start()
            child.close()
            self._workers.append((process, parent))
        self.warm_up_seconds: list[float] = []
        """Each process's warm-up time (they warm up at the same time)."""
        for index, (_, conn) in enumerate(self._workers):
            status, *info = conn.recv()
            if status != "ready":
                self.close()
                raise AsrError(f"a decoder process failed to start: {info[0]}")
            self.device_name, self.dtype, seconds = info
            self.warm_up_seconds.append(seconds)
            self._idle.put(index)
        import torch

        self.device = torch.device("cuda" if self.device_name.startswith("cuda") else "cpu")

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[list[Word]]:
        """Words of every request, decoded by one idle process."""
        index = self._idle.get()
        try:
            return self.decode_on(index, requests)
        finally:
            self._idle.put(index)

    def decode_on(self, index: int, requests: Sequence[DecodeRequest]) -> list[list[Word]]:
        """Words of every request, decoded by process ``index`` (a repeatable timing)."""
        _, conn = self._workers[index]
        with self._locks[index]:
            conn.send(list(requests))
            status, payload = conn.recv()
        if status != "ok":
            raise AsrError(f"decode failed in a decoder process: {payload}")
        return payload

    def close(self) -> None:
        """Stop every process."""
        for process, conn in self._workers:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            process.join(timeout=10)


def _serve(conn: Connection, transfer: str, config: Any) -> None:
    try:
        from asr.ct2_convert import load_transfer
        from asr.torch_backend import TorchWhisperDecoder

        decoder = TorchWhisperDecoder(load_transfer(transfer), config)  # warms up on this thread
    except Exception as exc:  # reported to the parent, which raises
        conn.send(("error", repr(exc)))
        return
    conn.send(("ready", str(decoder.device), str(decoder.dtype), decoder.warm_up_seconds))
    while (requests := conn.recv()) is not None:
        try:
            conn.send(("ok", decoder.decode_batch(requests)))
        except Exception as exc:  # one bad batch must not kill the decoder
            conn.send(("error", repr(exc)))
