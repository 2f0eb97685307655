// SupervisorLog: where a queue's administrative notices go (profile keyword
// `supervisor`): a value with a '/' is a file the notices are appended to
// (with time, host and queue), `/dev/null` silences them, any other value is
// a local user mailed through sendmail when one is installed (else the notice
// goes to the daemon's log, saying so); without `supervisor`, the daemon's log.
// The file is opened as OpenForAppendStrictly says (no link, no directory
// others can write), and a notice's text has its control characters escaped.
#pragma once

#include <optional>
#include <string>

namespace queue::daemon {

class SupervisorLog {
 public:
  explicit SupervisorLog(std::string host) : host_(std::move(host)) {}

  void Notify(const std::optional<std::string>& supervisor, const std::string& queue, const std::string& text) const;

 private:
  std::string Line(const std::string& queue, const std::string& text) const;
  std::string host_;
};

}  // namespace queue::daemon
