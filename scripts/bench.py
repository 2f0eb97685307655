#!/usr/bin/env python3
"""Benchmarks Queue against the tools users would pick instead (issue 13), each
figure against a floor and the peers measured in the same run, and writes
bench/RESULTS.md.

Usage: scripts/bench.py [--quick] [--no-install] [--out FILE] [--build DIR]

  --quick       tiny counts, a few runs: checks that every part still works
                (its figures say little); installs nothing, and uses the peers
                that happen to be installed
  --no-install  do not apt-get install the peers (use what is installed)
  --out FILE    where the report goes (default bench/RESULTS.md)
  --build DIR   the build directory holding bin/ (default build)

Without --quick it installs the peers with apt (openssh-server, task-spooler,
slurm-wlm, munge: never part of scripts/install-deps.sh, CI does not need them)
and starts them itself without systemd, each with files in one temp directory:
an sshd on a loopback port with its own host key and a temporary authorized key
for root, munged with its own key and socket, a one-node Slurm (slurmctld +
slurmd), tsp with its own socket, and a one-host Queue cluster from the build.
Everything it started is stopped on exit, by the PID it got at start. The drivers
in bench/ (bench_command_latency, bench_submit_rate, bench_stream_throughput,
bench_migrate_transfer, bench_migrate_latency) do the timing. Must run as root
(sshd, the network namespaces). Benchmarks never fail on speed: this exits
non-zero only when a part could not be measured at all.
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEER_PACKAGES = ["openssh-server", "openssh-client", "task-spooler", "slurm-wlm", "munge"]


def say(text):
    print(f"bench: {text}", file=sys.stderr, flush=True)


def free_port(address="127.0.0.1"):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def loadavg():
    return Path("/proc/loadavg").read_text().split()[0]


def wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {timeout} s")


def ok(argv, env=None, **kw):
    return subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw).returncode == 0


class Processes:
    """What this run started: stopped in reverse order on exit, by the Popen
    objects (their PIDs cannot be reused before we reap them)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.started = []  # (name, Popen)
        self.cleanups = []  # callables, run after the processes stop

    def start(self, name, argv, env=None, cwd=None):
        log = open(self.tmp / f"{name}.log", "ab")
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.started.append((name, p))
        return p

    def stop(self, p, grace=5):
        if p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop_all(self):
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as error:  # keep stopping the rest
                say(f"cleanup: {error}")
        self.cleanups.clear()
        for name, p in reversed(self.started):
            self.stop(p)
        self.started.clear()


def unix_socket_owner(path):
    """The PID of the process that listens on the Unix socket `path`, or None."""
    inode = None
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == str(path) and fields[5] == "01":  # 01: listening
            inode = fields[6]
    if inode is None:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
        except OSError:
            continue
    return None


# ---- The peers ----


class Ssh:
    name = "ssh"

    def __init__(self, procs, tmp):
        d = tmp / "ssh"
        d.mkdir(mode=0o700)
        for key in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
        shutil.copy(d / "user_key.pub", d / "authorized_keys")
        port = free_port()
        config = d / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n"
            f"PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            f"UsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\nLogLevel ERROR\nPrintMotd no\n")
        # sshd's privilege separation needs this directory (systemd would make it).
        if not Path("/run/sshd").exists():
            os.mkdir("/run/sshd", 0o755)
            procs.cleanups.append(lambda: os.rmdir("/run/sshd"))
        self.daemon = procs.start("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)])
        self.base = ["ssh", "-F", "/dev/null", "-p", str(port), "-i", f"{d}/user_key", "-o", "IdentitiesOnly=yes",
                     "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
                     f"UserKnownHostsFile={d}/known_hosts", "-o", "LogLevel=ERROR"]
        wait_for("sshd answering", lambda: ok(self.base + ["root@127.0.0.1", "true"]), 15)
        control = d / "control"
        procs.start("ssh-master", self.base + ["-o", "ControlMaster=yes", "-o", f"ControlPath={control}", "-N",
                                               "root@127.0.0.1"])
        wait_for("the ssh ControlMaster", control.exists, 15)
        self.mux = self.base + ["-o", "ControlMaster=no", "-o", f"ControlPath={control}"]

    def command(self, words, mux=False):
        return " ".join((self.mux if mux else self.base) + ["root@127.0.0.1"] + words)

    def pids(self):
        return {"sshd (listener)": self.daemon.pid}


class Slurm:
    name = "slurm"

    def __init__(self, procs, tmp):
        d = tmp / "slurm"
        (d / "state").mkdir(parents=True)
        (d / "spool").mkdir()
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        sock = d / "munge.sock"
        self.munged = procs.start("munged", ["munged", "-F", "--force", "--key-file", str(key), "--socket", str(sock),
                                             "--pid-file", f"{d}/munged.pid", "--log-file", f"{d}/munged.log",
                                             "--seed-file", f"{d}/munged.seed"])
        wait_for("munged's socket", sock.exists, 15)
        node = slurmd_node_line()
        host = node.split()[0].split("=")[1]
        conf = d / "slurm.conf"
        conf.write_text(
            "ClusterName=qbench\nSlurmctldHost=localhost\nSlurmUser=root\nSlurmdUser=root\n"
            f"SlurmctldPort={free_port()}\nSlurmdPort={free_port()}\n"
            f"AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={sock}\n"
            f"StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n"
            f"SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n"
            f"SlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n"
            "AccountingStorageType=accounting_storage/none\nMpiDefault=none\nSwitchType=switch/none\n"
            "SchedulerType=sched/backfill\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
            "MaxJobCount=200000\nMaxArraySize=100001\nReturnToService=2\nMinJobAge=2\n"
            f"{node}\nPartitionName=bench Nodes={host} Default=YES MaxTime=INFINITE State=UP\n")
        self.env = {"SLURM_CONF": str(conf)}
        env = dict(os.environ, **self.env)
        self.ctld = procs.start("slurmctld", ["slurmctld", "-D", "-c", "-f", str(conf)], env=env)
        self.slurmd = procs.start("slurmd", ["slurmd", "-D", "-f", str(conf)], env=env)

        def idle():
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            return out.strip() == "idle"

        wait_for("the Slurm node to be idle", idle, 60)
        self.munge_pid = self.munged.pid

    def pids(self):
        return {"munged": self.munged.pid, "slurmctld": self.ctld.pid, "slurmd": self.slurmd.pid}


def slurmd_node_line():
    """This host's NodeName line, with its real CPUs and memory, as slurmd sees them."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("NodeName="):
            return " ".join(w for w in line.split() if not w.startswith("UpTime="))
    raise RuntimeError("slurmd -C printed no NodeName line")


class Tsp:
    name = "tsp"

    def __init__(self, procs, tmp):
        d = tmp / "tsp"
        (d / "out").mkdir(parents=True)
        self.binary = shutil.which("tsp") or shutil.which("ts")
        self.env = {"TS_SOCKET": str(d / "socket"), "TS_SLOTS": str(os.cpu_count()), "TS_MAXFINISHED": "100000"}
        env = dict(os.environ, TMPDIR=str(d / "out"), **self.env)
        # The first call starts tsp's server, which detaches: it is found by its
        # socket, and stopped with `tsp -K` through that socket.
        subprocess.run([self.binary, "-S", str(os.cpu_count())], env=env, check=True)
        procs.cleanups.append(lambda: ok([self.binary, "-K"], env=env))
        wait_for("tsp's server", lambda: unix_socket_owner(d / "socket") is not None, 10)
        self.server = unix_socket_owner(d / "socket")

    def pids(self):
        return {"tsp server": self.server}

    def pending(self):
        return f"{self.binary} | awk 'NR>1 && $2!=\"finished\" && $2!=\"skipped\" {{n++}} END {{print n+0}}'"


class QueueCluster:
    """N queued daemons on 127.0.A.x (x = 1..N), each on its own address and port."""

    def __init__(self, procs, tmp, bin_dir, n=1, name="queue", subnet=77, extra=(), stagger=0.0):
        d = tmp / name
        d.mkdir()
        self.bin = bin_dir
        key = d / "cluster.key"
        subprocess.run([bin_dir / "queued", "--keygen", str(key)], check=True)
        # An address each (up to 254): a gossip membership's agent takes the
        # ports after the daemon's (port + 1, + 2), free where no one else listens.
        entries = [f"127.0.{subnet}.{i + 1}:{free_port(f'127.0.{subnet}.{i + 1}')}" for i in range(n)]
        (d / "hosts").write_text("".join(e + "\n" for e in entries))
        # A load file at 0 for each daemon: the machine's load (other work,
        # the bench itself) must not make a queue wait; tsp and Slurm ignore it too.
        (d / "loadavg").write_text("0.00 0.00 0.00 1/100 1\n")
        self.daemons, self.sockets = [], []
        for i, entry in enumerate(entries):
            spool = d / f"spool{i}"
            for q in ("now", "wait"):
                (spool / q).mkdir(parents=True)
                (spool / q / "profile").write_text("exec on\nallowroot\n")
            spool.chmod(0o700)
            sock = d / f"q{i}.sock"
            self.sockets.append(sock)
            self.daemons.append(procs.start(f"{name}-queued{i}", [
                str(bin_dir / "queued"), "-D", "--spooldir", str(spool), "--hosts", str(d / "hosts"), "--key",
                str(key), "--listen", entry, "--socket", str(sock), "--loadavg-file", str(d / "loadavg"),
                # The per-user limits (1,000 waiting jobs by default) would refuse
                # the bench's 10,000- and 20,000-job backlogs: one user is all there is.
                "--user-waiting-jobs", "10000000", "--user-spool-mib", str(1 << 20), *extra]))
            time.sleep(stagger)
        self.stagger = stagger
        self.env = {"QUEUE_SOCKET": str(self.sockets[0]), "QMAIL": "FALSE"}
        try:
            for sock in self.sockets:
                wait_for(f"queued on {sock}", lambda: ok([str(bin_dir / "queue"), "--socket", str(sock), "--status"]),
                         30)
        except RuntimeError:
            for p in self.daemons:
                procs.stop(p)
            raise
        self.n = n

    def hosts_up(self, i=0):
        out = subprocess.run([str(self.bin / "queue"), "--socket", str(self.sockets[i]), "--status", "--json"],
                             capture_output=True, text=True).stdout
        try:
            hosts = json.loads(out).get("hosts", [])
        except ValueError:
            return 0
        return sum(1 for h in hosts if h.get("alive", h.get("up", True)))


# ---- Running the drivers ----


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.bin = (REPO / args.build / "bin").resolve()
        self.tmp = Path(tempfile.mkdtemp(prefix="queue-bench."))
        self.procs = Processes(self.tmp)
        self.work = self.tmp / "work"
        self.work.mkdir()
        self.peers = {}
        self.figures = []
        self.tables = []  # the simulations' tables: (title, markdown, notes)
        self.lo_bytes_per_host = None  # the large part's measurement, for the membership simulation
        self.loads = [("start", loadavg())]
        self.env = dict(os.environ, TMPDIR=str(self.tmp / "work"))

    def driver(self, name, args, env_extra=None, timeout=3600):
        env = dict(self.env, **(env_extra or {}))
        argv = [str(self.bin / name)] + [str(a) for a in args]
        start = time.monotonic()
        result = subprocess.run(argv, env=env, cwd=self.work, capture_output=True, text=True, timeout=timeout)
        say(f"  {name} {' '.join(str(a) for a in args)[-90:]}: {time.monotonic() - start:.1f} s")
        if result.returncode != 0:
            raise RuntimeError(f"{name} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
        return result.stdout

    def all_env(self):
        env = {}
        for peer in self.peers.values():
            env.update(getattr(peer, "env", {}))
        env.update(self.queue.env)
        return env

    def start(self):
        say(f"temp dir {self.tmp}")
        for name, cls in (("ssh", Ssh), ("slurm", Slurm), ("tsp", Tsp)):
            needed = {"ssh": "/usr/sbin/sshd", "slurm": "slurmctld", "tsp": "tsp"}[name]
            if not (shutil.which(needed) or (name == "tsp" and shutil.which("ts"))):
                say(f"{name}: not installed, left out")
                continue
            try:
                self.peers[name] = cls(self.procs, self.tmp)
                say(f"{name}: started")
            except Exception as error:
                say(f"{name}: could not start, left out: {error}")
        self.queue = QueueCluster(self.procs, self.tmp, self.bin)
        say("queue: one-host cluster started")

    def figure(self, title, unit, higher_better, rows, target=None, notes=()):
        """rows: [(label, role, samples)], role in floor|queue|peer."""
        self.figures.append({"title": title, "unit": unit, "higher_better": higher_better, "rows": rows,
                             "target": target, "notes": list(notes), "load": loadavg()})

    # -- figure 1 and 2: interactive latency and CPU per job --
    def interactive(self):
        q = f"{self.bin}/queue -i -w -n -- true"
        # `queue --version` runs no job: what one start of a Queue program
        # costs, of which a job has three (client, shepherd, the job).
        commands = [("true (fork+exec+wait)", "floor", "/bin/true"), ("queue -i -w -n -- true", "queue", q),
                    ("queue --version (a program start, no job)", "part", f"{self.bin}/queue --version")]
        ssh, slurm, tsp = self.peers.get("ssh"), self.peers.get("slurm"), self.peers.get("tsp")
        if ssh:
            commands += [("ssh true", "peer", ssh.command(["true"])),
                         ("ssh true (ControlMaster)", "peer", ssh.command(["true"], mux=True))]
        if slurm:
            commands.append(("srun true", "peer", "srun -Q true"))
        if tsp:
            commands.append(("tsp -f true", "peer", f"{tsp.binary} -f true"))
        runs = 10 if self.quick else 200
        cpu_runs = 20 if self.quick else 500
        out = json.loads(self.driver("bench_command_latency", [
            "--runs", runs, "--warmup", 3, "--daemon-pid", self.queue.daemons[0].pid, "--cpu",
            "queue", "--cpu-runs", cpu_runs, "--cpu-blocks", 3 if self.quick else 5] +
            [f"{'queue' if role == 'queue' else label.replace(' ', '_')}={cmd}" for label, role, cmd in commands],
            self.all_env()))
        lat = out["latency_ms"]
        rows = [(label, role, lat["queue" if role == "queue" else label.replace(" ", "_")])
                for label, role, _ in commands]
        self.figure("Interactive job latency", "ms", False, rows,
                    target=("overhead over bare `true` under 2 ms", lambda m: m["queue"] - m["floor"] < 2,
                            lambda m: f"overhead {m['queue'] - m['floor']:.2f} ms"),
                    notes=[f"{runs} runs of each, interleaved; a run is one command started and waited for "
                           "(posix_spawn + wait4) by bench_command_latency.",
                           "tsp -f runs the job through tsp's server and waits for it: the nearest tsp has to an "
                           "interactive job.", "srun goes through slurmctld and slurmd on this host."])
        cpu = out["cpu_per_job_ms"]
        total = [a + b + c for a, b, c in zip(cpu["client"], cpu["daemon"], cpu["shepherd_and_job"])]
        self.figure("CPU per interactive job (`queue -i -w -n -- true`)", "ms CPU", False, [
            ("client (queue, wait4 rusage)", "part", cpu["client"]),
            ("daemon (queued, /proc/PID/stat utime+stime)", "part", cpu["daemon"]),
            ("shepherd + job (daemon's cutime+cstime)", "part", cpu["shepherd_and_job"]),
            ("total", "queue", total),
            ("true alone (fork+exec+wait, wait4 rusage)", "floor", out["client_cpu_ms"]["true_(fork+exec+wait)"]),
            ("queue --version alone (a program start, no job; wait4 rusage)", "part",
             out["client_cpu_ms"]["queue_--version_(a_program_start,_no_job)"])],
            target=("CPU per interactive job under 3 ms", lambda m: m["queue"] < 3, lambda m: f"{m['queue']:.2f} ms"),
            notes=[f"Each run: {cpu_runs} jobs in a row, CPU divided by {cpu_runs}; the daemon's clock-tick "
                   "counters (10 ms) are read before and after, after its children are reaped.",
                   "The job (`true`) itself is inside 'shepherd + job'."])

    # -- figure 3: batch throughput --
    def batch(self):
        total = 200 if self.quick else 10000
        runs = 1 if self.quick else 3
        tsp, slurm = self.peers.get("tsp"), self.peers.get("slurm")
        pending_queue = f"{self.bin}/queue --jobs --json | jq '.jobs | length'"
        for clients in (1, 16):
            sub_rows, done_rows = [], []
            systems = [("true (fork+exec+wait)", "floor", ["/bin/true"], "echo 0", total),
                       ("queue -r -- true", "queue", [str(self.bin / "queue"), "-r", "--", "true"], pending_queue,
                        total)]
            if tsp:
                systems.append(("tsp true", "peer", [tsp.binary, "true"], tsp.pending(), total))
            if slurm:
                n_slurm = 20 if self.quick else 100
                systems.append((f"sbatch --wrap true ({n_slurm} jobs)", "peer",
                                ["sbatch", "-Q", "-o", "/dev/null", "--wrap=true"], "squeue -h -r -o %i | wc -l",
                                n_slurm))
            for label, role, argv, pending, n in systems:
                results = [json.loads(self.driver("bench_submit_rate", [
                    "--calls", n, "--clients", clients, "--pending", pending, "--"] + argv, self.all_env()))
                    for _ in range(runs)]
                sub_rows.append((label, role, [r["submitted_per_s"] for r in results]))
                done_rows.append((label, role, [r["done_per_s"] for r in results]))
            notes = [f"{total} jobs per run ({runs} runs), {clients} submitting process(es) at a time; done/s counts "
                     "from the first submission to the moment the system lists no unfinished job (polled every 20 ms, or every "
                     "two poll times when a poll takes longer: a long listing costs the system measured).",
                     "Queue: one daemon; tsp: TS_SLOTS = the CPU count; Slurm: one node, backfill scheduler."]
            if slurm and not self.quick:
                notes.append("sbatch runs 100 jobs per run, not 10,000: Slurm finishes about one job a second "
                             "here (its scheduler's pace on one node), so 10,000 three times, twice, would take "
                             "days.")
            big = clients == 16
            tsp_target = ("batch ahead of tsp" + (" (16 submitters: 1,000/s submitted)" if big else ""),
                          (lambda m: m["queue"] > m.get("tsp true", 0) and (not big or m["queue"] >= 1000)),
                          lambda m: f"queue {m['queue']:.0f}/s, tsp {m.get('tsp true', float('nan')):.0f}/s")
            self.figure(f"Batch submission, {clients} submitter(s)", "jobs/s", True, sub_rows, target=tsp_target,
                        notes=notes)
            done_target = ("batch ahead of tsp" + (" (16 submitters: 1,000/s done)" if big else ""),
                           (lambda m: m["queue"] > m.get("tsp true", 0) and (not big or m["queue"] >= 1000)),
                           lambda m: f"queue {m['queue']:.0f}/s, tsp {m.get('tsp true', float('nan')):.0f}/s")
            self.figure(f"Batch jobs done, {clients} submitter(s)", "jobs/s", True, done_rows, target=done_target)

    # -- figure 4: bulk submission --
    def bulk(self):
        n = 200 if self.quick else 20000
        runs = 1 if self.quick else 3
        help_text = subprocess.run([str(self.bin / "queue"), "--help"], capture_output=True, text=True).stdout
        rows, notes = [], []
        pending_queue = f"{self.bin}/queue --jobs --json | jq '.jobs | length'"
        from_file = self.work / "bulk.jobs"
        from_file.write_text("true\n" * n)
        candidates = [("--array", f"queue -r --array 1-{n} -- true",
                       [str(self.bin / "queue"), "-r", "--array", f"1-{n}", "--", "true"]),
                      ("--from", "queue -r --from FILE (one `true` a line)",
                       [str(self.bin / "queue"), "-r", "--from", str(from_file)])]
        for option, label, argv in candidates:
            if option not in help_text:
                notes.append(f"`queue -r {option}`: not available in this build (not in `queue --help`).")
                continue
            try:
                # Submission only, as for Slurm below: each run's jobs are then
                # cancelled (a cancel of the array by its id), not run, and the
                # next run starts once none is left.
                results = []
                for _ in range(runs):
                    results.append(json.loads(self.driver("bench_submit_rate", [
                        "--calls", 1, "--jobs-per-call", n, "--pending", "echo 0", "--"] + argv, self.all_env())))
                    self.cancel_all_queue_jobs(pending_queue)
                rows.append((label, "queue", [r["submitted_per_s"] for r in results]))
            except RuntimeError as error:
                notes.append(f"`{label}` failed, so no figure: {str(error).splitlines()[-1]}")
        slurm = self.peers.get("slurm")
        if slurm:
            # Submission only: Slurm would take hours to run them, so they are cancelled.
            results = []
            for _ in range(runs):
                results.append(json.loads(self.driver("bench_submit_rate", [
                    "--calls", 1, "--jobs-per-call", n, "--pending", "echo 0", "--", "sbatch", "-Q", "-o", "/dev/null",
                    f"--array=1-{n}", "--wrap=true"], self.all_env())))
                ok(["scancel", "--quiet", "--user", "root"], env=dict(self.env, **self.all_env()))
            rows.append((f"sbatch --array=1-{n}", "peer", [r["submitted_per_s"] for r in results]))
        notes.append(f"{n} jobs in one call, {runs} run(s); the rate is jobs accepted per second of the submitting "
                     "call (each run's jobs are cancelled after it, not run: Queue's by their arrays' ids, Slurm's by scancel). tsp has no bulk submission (one "
                     "call per job: see the batch figures); GNU parallel keeps no spool, so it is no peer here.")
        if not any(role == "queue" for _, role, _ in rows):
            rows.append(("queue bulk submission", "queue", []))
        self.figure("Bulk submission into the spool", "jobs/s", True, rows,
                    target=("bulk 20,000 jobs/s into the spool", lambda m: m["queue"] >= 20000,
                            lambda m: f"{m['queue']:.0f} jobs/s"), notes=notes)

    def cancel_all_queue_jobs(self, pending_queue):
        env = dict(self.env, **self.all_env())
        listing = subprocess.run([str(self.bin / "queue"), "--jobs", "--json"], capture_output=True, text=True,
                                 env=env).stdout
        arrays = {job.get("array") or job["id"] for job in json.loads(listing).get("jobs", [])}
        for array in arrays:
            ok([str(self.bin / "queue"), "--cancel", array], env=env)
        wait_for("the cancelled jobs' end",
                 lambda: subprocess.run(["sh", "-c", pending_queue], capture_output=True, text=True,
                                        env=env).stdout.strip() == "0", 600)

    # -- figure 5: streams --
    def streams(self):
        size = (64 if self.quick else 1024) << 20
        runs = 2 if self.quick else 5
        q = f"{self.bin}/queue -n --"
        ssh = self.peers.get("ssh")
        modes = {
            "both": ("both ways (`cat`)", "cat", f"{q} cat", ["cat"]),
            "in": ("one way in (`cat > /dev/null`)", "sh -c cat>/dev/null", f"{q} sh -c cat>/dev/null",
                   ["cat>/dev/null"]),
            "out": ("one way out (`head -c N /dev/zero`)", f"head -c {size} /dev/zero",
                    f"{q} head -c {size} /dev/zero", ["head", "-c", str(size), "/dev/zero"]),
        }
        for mode, (title, floor, queue_cmd, ssh_words) in modes.items():
            commands = [("local pipe", "floor", floor), ("queue -n --", "queue", queue_cmd)]
            if ssh:
                commands += [("ssh", "peer", ssh.command(ssh_words)),
                             ("ssh (ControlMaster)", "peer", ssh.command(ssh_words, mux=True))]
            out = json.loads(self.driver("bench_stream_throughput", [
                "--bytes", size, "--runs", runs, "--mode", mode] +
                [f"{label.replace(' ', '_')}={cmd}" for label, _, cmd in commands], self.all_env()))
            rows = [(label, role, out["mib_per_s"][label.replace(" ", "_")]) for label, role, _ in commands]
            self.figure(f"Stream throughput, {title}, {size >> 20} MiB", "MiB/s", True, rows,
                        target=("streams at half a local pipe", lambda m: m["queue"] >= 0.5 * m["floor"],
                                lambda m: f"{m['queue'] / m['floor']:.2f} of the pipe"),
                        notes=[f"{runs} runs each, interleaved; bench_stream_throughput feeds the bytes from memory "
                               "and reads them back (local pipe: the command alone, between two pipes)."])

    # -- figure 6: restart-file move over a shaped link --
    def restart_move(self):
        mib = 64 if self.quick else 1024
        runs = 1 if self.quick else 3
        tcp, copied, moved = [], [], []
        for _ in range(runs):
            out = self.driver("bench_migrate_transfer", [mib, "--link-mbit", 10000])
            rate = lambda prefix: float(re.search(re.escape(prefix) + r".*?\s(\d+) MiB/s", out).group(1))
            tcp.append(rate("baseline: plain TCP on"))
            copied.append(rate("baseline: file copy over"))
            moved.append(rate("job exit -> restart on the new host"))
        self.figure(f"Restart-file move, {mib} MiB over a 10 Gbit/s veth (tbf)", "MiB/s", True,
                    [("plain TCP, memory to memory", "floor", tcp),
                     ("file copy over the link: read, sent, written, synced (no TLS, no hash)", "part", copied),
                     ("queue: job exit -> restart on the new host", "queue", moved)],
                    target=("restart move at 0.8 of TCP at 10 Gbit/s", lambda m: m["queue"] >= 0.8 * m["floor"],
                            lambda m: f"{m['queue'] / m['floor']:.2f} of TCP"),
                    notes=["bench_migrate_transfer --link-mbit 10000: two network namespaces joined by a veth pair, "
                           "tbf at 10 Gbit/s on both ends; the move includes packing, TLS, SHA-256 and unpacking."])

    # -- figure 7: idle daemons --
    def idle(self):
        window = 3 if self.quick else 30
        sizes = (1, 8) if self.quick else (1, 8, 32)
        cpu_rows, rss_rows = [], []
        for i, n in enumerate(sizes):
            cluster = QueueCluster(self.procs, self.tmp, self.bin, n=n, name=f"idle{n}", subnet=90 + i)
            try:
                wait_for(f"{n} hosts to see each other", lambda: cluster.hosts_up() >= n, 60)
                time.sleep(2 if self.quick else 10)  # past the start-up work
                pids = {f"queued #{k}": p.pid for k, p in enumerate(cluster.daemons)}
                if n == 1:
                    for peer in self.peers.values():
                        pids.update({k: v for k, v in peer.pids().items() if v})
                cpu, rss = sample_idle(pids, window)
                cpu_rows.append((f"queued, {n} host(s) (each daemon)", "queue" if n == sizes[-1] else "part",
                                 [cpu[k] for k in pids if k.startswith("queued")]))
                rss_rows.append((f"queued, {n} host(s) (each daemon)", "queue" if n == sizes[-1] else "part",
                                 [rss[k] for k in pids if k.startswith("queued")]))
                if n == 1:
                    for k in pids:
                        if not k.startswith("queued"):
                            cpu_rows.append((k, "peer", [cpu[k]]))
                            rss_rows.append((k, "peer", [rss[k]]))
            finally:
                for p in cluster.daemons:
                    self.procs.stop(p)
        note = [f"Each figure is one {window} s window; the rows of N hosts have one sample per daemon. "
                "The peers (sshd listener, munged, slurmctld, slurmd, tsp server) were sampled in the 1-host window.",
                f"The target is for 1,000 hosts; this bench starts at most {sizes[-1]} daemons on one machine, "
                "so it says whether the target is met at that size only. *queue ÷ this* compares the "
                "largest cluster's daemons with the peers."]
        self.figure("Idle daemon CPU", "% of a core", False, cpu_rows,
                    target=(f"idle daemon under 1% of a core (at 1,000 hosts; measured at {sizes[-1]})",
                            lambda m: m["queue"] < 1, lambda m: f"{m['queue']:.3f} %"), notes=note)
        self.figure("Idle daemon RSS", "MiB", False, rss_rows,
                    target=(f"idle daemon under 30 MiB (at 1,000 hosts; measured at {sizes[-1]})",
                            lambda m: m["queue"] < 30, lambda m: f"{m['queue']:.1f} MiB"))

    # -- figure 8: migration latency --
    def migration(self):
        runs = 2 if self.quick else 5
        out = json.loads(self.driver("bench_migrate_latency", [runs]))
        self.figure("Migration latency: load crosses loadcheckpoint -> job runs on the new host", "ms", False,
                    [("scheduled on the new host (queue --jobs)", "part", out["scheduled_ms"]),
                     ("job resumed there (its own output)", "queue", out["resumed_ms"])],
                    notes=[f"{runs} runs, a new job each (queue-example-counter on a 2-host loopback cluster, "
                           "checkpointmode 2, loadcheckpoint 3; the load set to 5 through --loadavg-file)."])


    # -- figure 9: a large cluster (gossip membership, issue 13) --
    def large(self):
        n = 24 if self.quick else 200
        window = 5 if self.quick else 30
        started = time.monotonic()
        # Started a quarter second apart, as a real cluster's hosts never all
        # start in the same second: 200 agents joining at once on two CPUs
        # overflow serf's message queues ("handler queue full"), and the
        # suspicions that follow keep the CPUs saturated for minutes.
        cluster = QueueCluster(self.procs, self.tmp, self.bin, n=n, name=f"large{n}", subnet=120,
                               extra=("--membership", "gossip"), stagger=0 if self.quick else 0.25)
        try:
            self.large_cluster(cluster, n, window, started)
        finally:  # failed or not: 2 x n processes left running would starve the parts after this one
            for p in cluster.daemons:
                self.procs.stop(p)

    def large_cluster(self, cluster, n, window, started):
        wait_for(f"host 0 to see {n} hosts up", lambda: cluster.hosts_up() >= n, 300)
        converged = time.monotonic() - started
        time.sleep(2 if self.quick else 10)  # past the start-up work
        daemons = {f"queued #{k}": p.pid for k, p in enumerate(cluster.daemons)}
        agents = {f"serf #{k}": c for k, p in enumerate(cluster.daemons) for c in children(p.pid)[:1]}
        sockets = [socket_count(p) for p in daemons.values()]
        bytes0, packets0 = loopback_traffic()
        cpu, rss = sample_idle({**daemons, **agents}, window)
        bytes1, packets1 = loopback_traffic()
        self.lo_bytes_per_host = (n, (bytes1 - bytes0) / n / window)
        self.figure(f"Idle {n}-host cluster, gossip membership: each host", "per host", False,
                    [("queued CPU (% of a core)", "queue", [cpu[k] for k in daemons]),
                     ("queued RSS (MiB)", "part", [rss[k] for k in daemons]),
                     ("queued sockets (listening and connected)", "part", sockets),
                     ("serf agent CPU (% of a core)", "part", [cpu[k] for k in agents]),
                     ("serf agent RSS (MiB)", "part", [rss[k] for k in agents]),
                     ("loopback packets per host per second", "part", [(packets1 - packets0) / n / window]),
                     ("loopback bytes per host per second", "part", [(bytes1 - bytes0) / n / window])],
                    notes=[f"{n} queued daemons with --membership gossip on 127.0.120.1-{n}, each with its serf "
                           f"agent (lan timings), started {cluster.stagger} s apart; all {n} seen up by host 0 {converged:.0f} s "
                           "after the first start.",
                           f"Sampled over {window} s of idleness. Traffic is all of lo over the window (only the "
                           "cluster talks there), shared out per host: serf's gossip and probes; no daemon "
                           "pushes its load.",
                           "A full mesh at this size would hold 2 x (n - 1) TLS connections per daemon "
                           f"({2 * (n - 1)}) and send and receive n - 1 load reports a second each."])
        # One placement: three hosts asked, the least loaded takes the job.
        runs = 5 if self.quick else 30
        q = [str(self.bin / "queue"), "--socket", str(cluster.sockets[0]), "-i", "-w", "-n", "--", "true"]
        one = [str(self.bin / "queue"), "-i", "-w", "-n", "--", "true"]
        times, single, floor = [], [], []
        for _ in range(runs):  # interleaved
            for argv, env, into in ((q, dict(self.env, **cluster.env), times),
                                    (one, dict(self.env, **self.queue.env), single), (["/bin/true"], None, floor)):
                t = time.monotonic()
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
                into.append((time.monotonic() - t) * 1000)
        self.figure(f"One interactive job in the {n}-host cluster", "ms", False,
                    [("true (fork+exec+wait)", "floor", floor),
                     (f"queue -i -w -n -- true, {n} hosts, gossip", "queue", times),
                     ("queue -i -w -n -- true, one host (no question asked)", "part", single)],
                    notes=[f"{runs} runs of each, interleaved, from host 0: each placement asks 3 hosts chosen at "
                           "random among those the gossip says are up (one round trip, on links made on demand "
                           "or still open), then offers the job to the least loaded."])
        # Detection: a daemon killed (its agent dies with it), and a host hung
        # (daemon and agent stopped): until host 0 shows it down.
        def down(k):
            out = subprocess.run([str(self.bin / "queue"), "--socket", str(cluster.sockets[0]), "--status",
                                  "--json"], capture_output=True, text=True).stdout
            try:
                hosts = json.loads(out).get("hosts", [])
            except ValueError:
                return False
            return any(h.get("host", "").startswith(f"127.0.120.{k + 1}:") and not h.get("alive") for h in hosts)

        killed, hung = [], []
        tries = 1 if self.quick else 3
        for t in range(tries):
            k = n - 1 - t
            victim = cluster.daemons[k]
            start = time.monotonic()
            victim.kill()
            victim.wait()
            wait_for(f"host {k} seen down", lambda: down(k), 120)
            killed.append(time.monotonic() - start)
            j = n - 1 - tries - t
            stopped = [cluster.daemons[j].pid] + children(cluster.daemons[j].pid)
            start = time.monotonic()
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            try:
                wait_for(f"host {j} seen down", lambda: down(j), 120)
                hung.append(time.monotonic() - start)
            finally:
                for pid in stopped:
                    os.kill(pid, signal.SIGCONT)
        self.figure(f"Time to see a host down in the {n}-host cluster", "s", False,
                    [("daemon killed (its agent dies with it)", "queue", killed),
                     ("host hung (daemon and agent stopped)", "part", hung)],
                    notes=["From the kill or the stop until host 0's `queue --status` shows the host down (polled); "
                           "serf's lan timings. A host down for longer than --host-timeout (60 s by default) "
                           "has its jobs from other hosts taken for lost."])

    # -- 1,000 and 10,000 hosts, simulated in process --
    def simulation(self):
        jobs = "10" if self.quick else "100"
        trials = "3" if self.quick else "20"
        placement = self.driver("bench_placement_sim", ["--hosts", "1000,10000", "--jobs-per-host", jobs])
        self.tables.append(("Placement in a simulated cluster of 1,000 and 10,000 hosts", placement,
                            ["bench_placement_sim: jobs arrive as a Poisson stream at 70% and 90% of the "
                             "cluster's slots (4 per host), run times exponential; each policy places the same "
                             "arrivals. Queue above 16 hosts places by the best of 3 (`sched/host_sampler`).",
                             "Messages per host per second: the probes and answers plus the offer and its answer "
                             "for sampling; the full table adds a load report to and from every peer each second.",
                             "Latency of one placement: the sampled hosts are asked at once, so it is one round "
                             "trip (on a link made on demand when none is open) plus the offer, whatever the "
                             "cluster's size: the 200-daemon figure above measures it."]))
        args = ["--hosts", "200,1000,10000", "--trials", trials]
        if self.lo_bytes_per_host:
            args += ["--measured", f"{self.lo_bytes_per_host[0]}:{self.lo_bytes_per_host[1]:.0f}"]
        membership = self.driver("bench_membership_sim", args)
        self.tables.append(("Failure detection and membership traffic, simulated at 1,000 and 10,000 hosts",
                            membership,
                            ["bench_membership_sim follows Serf's memberlist (SWIM with Lifeguard suspicion, LAN "
                             "defaults: probe 1 s, suspicion 4-24 x log10 N probe intervals shrinking with 2 "
                             "confirmations, gossip to 3 members every 200 ms); a stopped (hung) host is detected "
                             "as a dead one. Its 200-host row can be checked against the measured 200-daemon "
                             "figures above.",
                             "A daemon counts a host down once its agent reports it failed; jobs it ran for other "
                             "hosts are taken for lost after --host-timeout (60 s)."
                             + ("" if self.lo_bytes_per_host else
                                " (The large part did not run: no measured traffic calibrates the byte figures.)")]))

def children(pid):
    """The PIDs of the children of `pid` (its serf agent, for a queued)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def socket_count(pid):
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            pass
    return count


def loopback_traffic():
    """Bytes and packets received on lo so far (every host of a loopback cluster talks there)."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            f = rest.split()
            return int(f[0]), int(f[1])
    return 0, 0


def sample_idle(pids, window):
    """CPU (% of one core) and RSS (MiB) of each process over `window` seconds."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu_ticks(pid):
        text = Path(f"/proc/{pid}/stat").read_text()
        f = text[text.rindex(")") + 2:].split()
        return int(f[11]) + int(f[12])

    before = {k: cpu_ticks(p) for k, p in pids.items()}
    start = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - start
    cpu = {k: 100.0 * (cpu_ticks(p) - before[k]) / tick / elapsed for k, p in pids.items()}
    rss = {}
    for k, p in pids.items():
        m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())
        rss[k] = int(m.group(1)) / 1024
    return cpu, rss


# ---- The report ----


def fmt(x):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}" if abs(x) >= 0.01 else f"{x:.4f}"


def machine():
    model = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                  if l.startswith("model name")), platform.machine())
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) // 1024
    return f"{os.cpu_count()} CPUs ({model}), {mem:,} MiB RAM, Linux {platform.release()}"


def report(bench, started, errors, done, chosen):
    lines = ["# Benchmark results", ""]
    mode = "QUICK RUN (--quick: tiny counts, the figures say little)" if bench.quick else "full run"
    if bench.args.only:
        mode += f" of the parts {bench.args.only} only (--only)"
    if done != chosen:  # written after each part: a run stopped half-way must not pass for a whole one
        mode += (f", UNFINISHED: parts done {', '.join(done) or 'none'}; not run "
                 f"{', '.join(p for p in chosen if p not in done)}")
    busy = max(float(l) for _, l in bench.loads + [(None, f["load"]) for f in bench.figures])
    flags = (" --quick" if bench.quick else "") + (f" --only {bench.args.only}" if bench.args.only else "")
    lines += [f"Made by `scripts/bench.py{flags}` on "
              f"{started.strftime('%Y-%m-%d %H:%M UTC')}: {mode}.", "",
              f"- machine: {machine()}",
              "- 1-minute load: " + ", ".join(f"{w} {l}" for w, l in bench.loads) +
              "; at the start of each figure: " + ", ".join(f["load"] for f in bench.figures),
              "- peers: " + (", ".join(sorted(bench.peers)) or "none") + " (started by the script, see README)"]
    if bench.quick:
        lines += ["", "**A --quick run only checks that every part of the bench works: its counts are tiny. "
                      "For figures, run `scripts/bench.py` on an otherwise idle machine.**"]
    if busy >= 1:
        lines += ["", f"**The machine was busy (1-minute load up to {busy:.2f} on {os.cpu_count()} CPUs) during "
                      "this run: the figures are noisy, and ratios within one figure are the most telling part.**"]
    header, lines = lines, []
    lines += ["", "Each figure: median, min and max of its runs; *× floor* is the median over the floor's "
                  "median (bare command, local pipe, plain TCP); *queue ÷ this* is Queue's median over this row's.",
              ""]
    targets = []
    for f in bench.figures:
        lines += [f"## {f['title']}", "", f"| | runs | median | min | max | × floor | queue ÷ this |",
                  "|---|---|---|---|---|---|---|"]
        med = {}
        for label, role, samples in f["rows"]:
            if samples:
                med[label] = statistics.median(samples)
                if role in ("floor", "queue"):
                    med[role] = med[label]
        for label, role, samples in f["rows"]:
            if not samples:
                lines.append(f"| {label} | 0 | not measured | | | | |")
                continue
            m = med[label]
            floor = fmt(m / med["floor"]) if "floor" in med and med["floor"] else "-"
            vs = fmt(med["queue"] / m) if role == "peer" and "queue" in med and m else "-"
            lines.append(f"| {label} ({f['unit']}) | {len(samples)} | {fmt(m)} | {fmt(min(samples))} | "
                         f"{fmt(max(samples))} | {floor} | {vs} |")
        lines.append("")
        for note in f["notes"]:
            lines.append(f"- {note}")
        if f["target"]:
            text, met, show = f["target"]
            if "queue" in med:
                verdict = "met" if met(med) else "NOT met"
                value = show(med)
            else:
                verdict, value = "not measured", "-"
            lines.append(f"- target: {text}: **{verdict}** ({value})")
            targets.append((f["title"], text, value, verdict))
        lines.append("")
    for title, table, notes in bench.tables:
        lines += [f"## {title}", "", table.strip(), ""] + [f"- {note}" for note in notes] + [""]
    causes = REPO / "bench" / "CAUSES.md"
    if causes.exists():  # the analysis of the targets not met: written by hand, dated, kept beside the figures
        lines += [causes.read_text().strip(), ""]
    if errors:
        lines += ["## Parts that could not be measured", ""] + [f"- {e}" for e in errors] + [""]
    summary = ["## Targets (issue 13)", "", "| figure | target | measured | |", "|---|---|---|---|"]
    summary += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets]
    return "\n".join(header + ["", *summary] + lines)


def install_peers():
    say("installing the peers with apt: " + " ".join(PEER_PACKAGES))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    missing = [p for p in PEER_PACKAGES if not ok(["dpkg-query", "-W", "-f=${Status}", p])
               or "install ok installed" not in subprocess.run(["dpkg-query", "-W", "-f=${Status}", p],
                                                                capture_output=True, text=True).stdout]
    if not missing:
        return
    # Debian's postinst scripts start each service through invoke-rc.d unless
    # policy-rc.d forbids it: this bench starts its own, on its own ports.
    policy = Path("/usr/sbin/policy-rc.d")
    made = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\n# scripts/bench.py: no service starts while it installs its peers\nexit 101\n")
        policy.chmod(0o755)
        made = True
    try:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing, env=env, check=True,
                       stdout=subprocess.DEVNULL)
    finally:
        if made:
            policy.unlink()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench" / "RESULTS.md"))
    parser.add_argument("--build", default="build")
    parser.add_argument("--only", help="comma-separated parts (interactive,batch,bulk,streams,move,idle,migration,large,sim)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: run as root (sshd for root, network namespaces for the restart move)")
    for tool in ("jq",):
        if not shutil.which(tool):
            sys.exit(f"bench: needs {tool} (scripts/install-deps.sh installs it)")
    if not args.quick and not args.no_install:
        install_peers()
    started = datetime.datetime.now(datetime.timezone.utc)
    bench = Bench(args)
    if not (bench.bin / "bench_command_latency").exists():
        sys.exit(f"bench: no drivers in {bench.bin}: build first (scripts/build.sh {args.build})")
    atexit.register(lambda: (bench.procs.stop_all(), shutil.rmtree(bench.tmp, ignore_errors=True)))
    for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signo, lambda s, _: sys.exit(128 + s))
    bench.start()
    parts = {"interactive": bench.interactive, "batch": bench.batch, "bulk": bench.bulk, "streams": bench.streams,
             "large": bench.large, "sim": bench.simulation,
             "move": bench.restart_move, "idle": bench.idle, "migration": bench.migration}
    chosen = args.only.split(",") if args.only else list(parts)
    errors, done = [], []
    for name in chosen:
        say(f"{name} (load {loadavg()})")
        try:
            parts[name]()
        except Exception as error:  # one part failing leaves the others' figures
            say(f"{name} FAILED: {error}")
            errors.append(f"{name}: {error}".replace("\n", " ")[:500])
        done.append(name)
        Path(args.out).write_text(report(bench, started, errors, done, chosen))  # so far, in case a later part hangs
    bench.loads.append(("end", loadavg()))
    text = report(bench, started, errors, done, chosen)
    Path(args.out).write_text(text)
    say(f"wrote {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
