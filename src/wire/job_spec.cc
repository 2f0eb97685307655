// Encoding and validation of JobSpec.
#include "wire/job_spec.h"

namespace queue::wire {

bool IsValidQueueName(std::string_view name) {
  // A leading dot is kept for the spool's own hidden directories (`.queued`).
  if (name.empty() || name.size() >= 32 || name.front() == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

namespace {

void EncodeTerminal(Writer& w, const TerminalSettings& t) {
  w.boolean(t.present);
  w.u32(t.iflag);
  w.u32(t.oflag);
  w.u32(t.cflag);
  w.u32(t.lflag);
  w.str(std::string(t.control_chars.begin(), t.control_chars.end()));
  w.u32(t.ispeed);
  w.u32(t.ospeed);
  w.u16(t.rows);
  w.u16(t.cols);
  w.u16(t.xpixel);
  w.u16(t.ypixel);
}

TerminalSettings DecodeTerminal(Reader& r) {
  TerminalSettings t;
  t.present = r.boolean();
  t.iflag = r.u32();
  t.oflag = r.u32();
  t.cflag = r.u32();
  t.lflag = r.u32();
  std::string cc = r.str(64);
  t.control_chars.assign(cc.begin(), cc.end());
  t.ispeed = r.u32();
  t.ospeed = r.u32();
  t.rows = r.u16();
  t.cols = r.u16();
  t.xpixel = r.u16();
  t.ypixel = r.u16();
  return t;
}

}  // namespace

void JobSpec::Encode(Writer& w) const {
  w.strings(argv);
  w.strings(env);
  w.str(cwd);
  w.u32(umask);
  w.i32(nice);
  w.u32(uid);
  w.u32(gid);
  w.u32(static_cast<uint32_t>(groups.size()));
  for (uint32_t g : groups) w.u32(g);
  w.u32(static_cast<uint32_t>(rlimits.size()));
  for (const auto& l : rlimits) {
    w.u32(l.resource);
    w.u64(l.soft);
    w.u64(l.hard);
  }
  w.u8(static_cast<uint8_t>(pty));
  w.boolean(stderr_is_tty);
  EncodeTerminal(w, terminal);
  w.boolean(batch);
  w.str(queue);
  w.str(job_name);
  w.str(only_host);
  w.str(preferred_host);
  w.str(stub_address);
  w.u16(stub_port);
  w.str(session_key);
}

JobSpec JobSpec::Decode(Reader& r) {
  JobSpec s;
  s.argv = r.strings(kMaxArgs, kMaxArgBytes);
  s.env = r.strings(kMaxEnvVars, kMaxEnvBytes);
  s.cwd = r.str(kMaxPathBytes);
  s.umask = r.u32();
  s.nice = r.i32();
  s.uid = r.u32();
  s.gid = r.u32();
  uint32_t ngroups = r.count(kMaxGroups);
  for (uint32_t i = 0; i < ngroups && r.ok(); ++i) s.groups.push_back(r.u32());
  uint32_t nlimits = r.count(kMaxRlimits);
  for (uint32_t i = 0; i < nlimits && r.ok(); ++i) {
    ResourceLimit l;
    l.resource = r.u32();
    l.soft = r.u64();
    l.hard = r.u64();
    s.rlimits.push_back(l);
  }
  uint8_t pty = r.u8();
  s.stderr_is_tty = r.boolean();
  s.terminal = DecodeTerminal(r);
  s.batch = r.boolean();
  s.queue = r.str(kMaxNameBytes);
  s.job_name = r.str(kMaxNameBytes);
  s.only_host = r.str(kMaxNameBytes);
  s.preferred_host = r.str(kMaxNameBytes);
  s.stub_address = r.str(kMaxNameBytes);
  s.stub_port = r.u16();
  s.session_key = r.str(kSessionKeyBytes);
  if (!r.ok()) return s;

  if (pty > static_cast<uint8_t>(PtyMode::kHalf)) r.fail("unknown pty mode");
  s.pty = static_cast<PtyMode>(pty);
  if (s.argv.empty()) r.fail("empty command");
  if (s.umask > 0777) r.fail("umask out of range");
  if (s.nice < -40 || s.nice > 40) r.fail("nice out of range");
  if (s.cwd.empty() || s.cwd[0] != '/') r.fail("cwd is not an absolute path");
  if (!IsValidQueueName(s.queue)) r.fail("invalid queue name");
  if (!s.session_key.empty() && s.session_key.size() != kSessionKeyBytes)
    r.fail("session key of the wrong size");
  for (const auto& arg : s.argv)
    if (arg.find('\0') != std::string::npos) r.fail("NUL byte in an argument");
  for (const auto& var : s.env)
    if (var.find('\0') != std::string::npos || var.find('=') == std::string::npos)
      r.fail("malformed environment entry");
  if (s.cwd.find('\0') != std::string::npos) r.fail("NUL byte in cwd");
  for (const auto& l : s.rlimits)
    if (l.resource >= kMaxRlimits) r.fail("unknown resource limit");
  return s;
}

bool DiscardsOutput(const JobSpec& spec) {
  for (const auto& variable : spec.env)
    if (variable == "QMAIL=FALSE") return true;
  return false;
}

}  // namespace queue::wire
