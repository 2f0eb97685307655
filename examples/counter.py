#!/usr/bin/env python3
"""A long, deterministic computation that Queue can migrate between hosts.

    counter.py [--resume] STEPS [DELAY_SECONDS]

The same program as counter.cc (same arithmetic, output and restart file), in
Python with nothing but the standard library: step i (1..STEPS) folds i*i into
an accumulator, acc = (31*acc + i*i) mod p. On the checkpoint signal (SIGUSR2,
or QUEUE_CHECKPOINT_SIGNAL) it saves "queue-example-counter 1 STEPS STEP ACC"
to $QUEUE_RESTART_FILE (default ./checkpoint.restart) and exits 0. Started with
--resume, or with RESTARTED=1, it goes on from that file, and never starts
over instead: a missing or bad file is exit code 2. A finished run ends with
the line "result ACC".
"""

import os
import re
import signal
import sys
import tempfile
import time

MODULUS = 1000000007
MAX_STEPS = 1000000000
MAGIC = "queue-example-counter"
FORMAT = "1"
USAGE_OR_RESUME_ERROR = 2
COUNT = re.compile(r"0|[1-9][0-9]{0,17}")

checkpoint_requested = False


def on_checkpoint_signal(signo, frame):
    global checkpoint_requested
    checkpoint_requested = True


def install_checkpoint_handler():
    """SIGUSR2 unless QUEUE_CHECKPOINT_SIGNAL names another (number or name)."""
    configured = os.environ.get("QUEUE_CHECKPOINT_SIGNAL", "")
    signo = signal.SIGUSR2
    if re.fullmatch(r"[0-9]+", configured):
        signo = int(configured)
    elif configured:
        signo = getattr(signal, configured if configured.startswith("SIG") else "SIG" + configured, None)
    try:
        signal.signal(signo, on_checkpoint_signal)
    except (TypeError, ValueError, OSError):
        fail(f"QUEUE_CHECKPOINT_SIGNAL={configured}: not a signal this program can catch")


def fail(message):
    print(f"queue-example-counter: {message}", file=sys.stderr)
    sys.exit(USAGE_OR_RESUME_ERROR)


def usage():
    fail("usage: counter.py [--resume] STEPS [DELAY_SECONDS]\n"
         "  STEPS 1..1000000000, DELAY_SECONDS 0..60 per step (default 0)")


def parse_count(text):
    """A plain decimal number, as all three examples accept it; None if not."""
    return int(text) if COUNT.fullmatch(text) else None


def parse_arguments(argv):
    resume = "--resume" in argv
    words = [word for word in argv if word != "--resume"]
    if not 1 <= len(words) <= 2:
        usage()
    total = parse_count(words[0])
    if total is None or not 1 <= total <= MAX_STEPS:
        usage()
    delay = 0.0
    if len(words) == 2:
        try:
            delay = float(words[1])
        except ValueError:
            usage()
        if not 0 <= delay <= 60:
            usage()
    restart_count = parse_count(os.environ.get("QUEUE_RESTART_COUNT", ""))
    restarted = os.environ.get("RESTARTED") == "1" or bool(restart_count)
    return total, delay, resume or restarted


def restart_file():
    return os.environ.get("QUEUE_RESTART_FILE") or "checkpoint.restart"


def load_or_exit(path, total):
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            fields = file.readline().split()
    except OSError as error:
        fail(f"cannot resume: restart file {path}: {error.strerror}")
    numbers = [parse_count(word) for word in fields[2:]]
    well_formed = (len(fields) == 5 and fields[0] == MAGIC and fields[1] == FORMAT and None not in numbers
                   and numbers[1] <= numbers[0] and numbers[2] < MODULUS)
    if not well_formed:
        fail(f"cannot resume: restart file {path} is not a counter checkpoint")
    saved_total, step, acc = numbers
    if saved_total != total:
        fail(f"cannot resume: restart file {path} is for {saved_total} steps, not {total}")
    return step, acc


def save_atomically(path, text):
    """Temp file beside path, fsync, rename: a reader sees the old file or the new one."""
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(prefix=os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def checkpoint(path, total, step, acc):
    try:
        save_atomically(path, f"{MAGIC} {FORMAT} {total} {step} {acc}\n")
    except OSError as error:
        print(f"queue-example-counter: cannot save restart file {path}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"checkpoint at step {step} of {total} saved to {path}", flush=True)
    return 0


def run(total, delay, resume):
    path = restart_file()
    step, acc = 0, 0
    if resume:
        step, acc = load_or_exit(path, total)
        print(f"resumed at step {step} of {total} from {path}", flush=True)
    else:
        print(f"start at step 0 of {total}", flush=True)
    report_every = total // 10 if total >= 10 else 1
    while step < total:
        if checkpoint_requested:
            return checkpoint(path, total, step, acc)
        step += 1
        acc = (acc * 31 + step * step) % MODULUS
        if step % report_every == 0:
            print(f"step {step} of {total}", flush=True)
        if delay > 0:
            time.sleep(delay)
    print(f"result {acc}", flush=True)
    return 0


def main():
    install_checkpoint_handler()  # first, so that an early checkpoint signal is not fatal
    return run(*parse_arguments(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
