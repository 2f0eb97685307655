// Mail from queued to a local user (a job's owner, a queue's supervisor),
// handed to the host's sendmail. Delivery is sendmail's business: queued
// neither waits for it nor learns whether it worked, only whether sendmail
// could be started.
#pragma once

#include <string>

namespace queue::daemon {

// A message before it is addressed: what the job-mail composers produce.
struct MailMessage {
  std::string subject;
  std::string body;
  bool operator==(const MailMessage&) const = default;
};

// Mails `body` to the local user `to` through /usr/sbin/sendmail or, failing
// that, /usr/lib/sendmail. Returns false when neither is installed or it could
// not be started. Does not wait for sendmail: the daemon reaps its children in
// one place. Line breaks and other control characters in `to` and `subject`
// become spaces, so no caller can add a header.
bool SendMail(const std::string& to, const std::string& subject, const std::string& body);

// SendMail through the given program (called as `sendmail -oi -- to`), e.g. a
// stand-in in tests. Returns false when it could not be started.
bool SendMailVia(const std::string& sendmail, const std::string& to, const std::string& subject,
                 const std::string& body);

}  // namespace queue::daemon
