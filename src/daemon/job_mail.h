// The mail a batch job's owner gets (profile keyword `mail`, letters s e c;
// inventory §3.4): whether a job's start or end is mailed, and the subject and
// body. Only composes; daemon/mailer sends. Interactive (-w) jobs are never
// mailed: callers do not ask for them. Stateless functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "daemon/mailer.h"
#include "profile/queue_policy.h"

namespace queue::daemon {

// The most output a mail carries; the rest stays in the output file.
inline constexpr size_t kMaxMailedOutput = 64 * 1024;

struct JobMailInput {
  std::string job_name, queue, host;  // host: the execution host's entry
  std::string job_id;  // as its owner knows it: "17.2"
  bool crashed = false;     // never ran, or was lost with its shepherd or host
  int wait_status = 0;      // as from waitpid, when !crashed
  double cpu_seconds = 0;
  std::string output;       // at most the first kMaxMailedOutput bytes
  bool output_truncated = false;  // the job wrote more than `output` holds
  std::string failure;      // why, when crashed
};

// The end-of-job mail, or nullopt when none is due. One is due when the
// queue's flag for this kind of end is set (`e` for a job that ended, `c` for
// one that crashed), or the job left output, or it did not exit with 0.
// Subject: `Success|Unsuccessful|Crash[+Output]: '<job>' in '<queue>' queue_b`.
std::optional<MailMessage> ComposeJobMail(const JobMailInput& job, const profile::MailEvents& events);

// The start mail (flag `s`), or nullopt when the flag is not set. Reads only
// job_name, queue, host and job_id.
std::optional<MailMessage> ComposeStartMail(const JobMailInput& job, const profile::MailEvents& events);

}  // namespace queue::daemon
