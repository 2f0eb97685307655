// Composing a batch job's start and end mail.
#include "daemon/job_mail.h"

#include <sys/wait.h>

#include <cstdio>

#include "profile/signal_names.h"
#include "util/printable.h"

namespace queue::daemon {

namespace {

// The queue_b suffix and the quoting are the original's, so mail filters written
// for GNU Queue keep working.
std::string Subject(const std::string& outcome, const JobMailInput& job) {
  // A name with a newline would otherwise add a header of its own to the mail.
  return outcome + ": '" + util::Printable(job.job_name) + "' in '" + job.queue + "' queue_b";
}

std::string Heading(const JobMailInput& job) {
  std::string heading = "Job " + job.job_id + " '" + util::Printable(job.job_name) + "' in queue '" + job.queue + "'";
  return job.host.empty() ? heading : heading + " on host " + job.host;
}

bool Succeeded(const JobMailInput& job) {
  return !job.crashed && WIFEXITED(job.wait_status) && WEXITSTATUS(job.wait_status) == 0;
}

std::string Outcome(const JobMailInput& job) {
  if (job.crashed) return job.failure.empty() ? "Crashed." : "Crashed: " + util::Printable(job.failure);
  int status = job.wait_status;
  if (WIFEXITED(status)) return "Exit code: " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "Killed by signal " + profile::SignalName(WTERMSIG(status)) +
           (WCOREDUMP(status) ? " (core dumped)" : " (no core dumped)");
  char raw[32];
  std::snprintf(raw, sizeof raw, "0x%x", static_cast<unsigned>(status));
  return std::string("Ended with wait status ") + raw;
}

std::string CpuTime(double seconds) {
  char text[64];
  std::snprintf(text, sizeof text, "CPU time: %.2f s", seconds);
  return text;
}

std::string OutputSection(const JobMailInput& job) {
  if (job.output.empty()) return "The job wrote no output.\n";
  std::string section = "Output:\n\n" + job.output;
  if (section.back() != '\n') section += '\n';
  if (job.output_truncated)
    section += "\n[output truncated: only its first " + std::to_string(job.output.size()) + " bytes are here]\n";
  return section;
}

}  // namespace

std::optional<MailMessage> ComposeJobMail(const JobMailInput& job, const profile::MailEvents& events) {
  bool succeeded = Succeeded(job);
  bool has_output = !job.output.empty();
  bool flagged = job.crashed ? events.crash : events.end;
  bool ended_badly = !job.crashed && !succeeded;  // a crash is the `c` flag's call
  if (!flagged && !has_output && !ended_badly) return std::nullopt;
  std::string outcome = job.crashed ? "Crash" : succeeded ? "Success" : "Unsuccessful";
  if (has_output) outcome += "+Output";
  MailMessage mail;
  mail.subject = Subject(outcome, job);
  mail.body = Heading(job) + "\n" + Outcome(job) + "\n" + CpuTime(job.cpu_seconds) + "\n\n" + OutputSection(job);
  return mail;
}

std::optional<MailMessage> ComposeStartMail(const JobMailInput& job, const profile::MailEvents& events) {
  if (!events.start) return std::nullopt;
  return MailMessage{Subject("Started", job), Heading(job) + " has started.\n"};
}

}  // namespace queue::daemon
