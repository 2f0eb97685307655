// Handing a message to sendmail. The message is written whole to an anonymous
// in-memory file that becomes sendmail's stdin, so the daemon never blocks on
// a slow sendmail and never gets SIGPIPE from one that quits early.
#include "daemon/mailer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/close_range.h>

#include <cctype>

namespace queue::daemon {

namespace {

constexpr const char* kSendmailPaths[] = {"/usr/sbin/sendmail", "/usr/lib/sendmail"};

// A header value on one line: a job name with a newline must not become a header.
std::string OneLine(const std::string& text) {
  std::string line = text;
  for (char& c : line)
    if (std::iscntrl(static_cast<unsigned char>(c))) c = ' ';
  return line;
}

bool WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// The whole message in a memory file, rewound for sendmail to read; -1 on failure.
int MessageFile(const std::string& message) {
  int fd = memfd_create("queued-mail", MFD_CLOEXEC);
  if (fd < 0) return -1;
  if (!WriteAll(fd, message) || lseek(fd, 0, SEEK_SET) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

bool SendMailVia(const std::string& sendmail, const std::string& to, const std::string& subject,
                 const std::string& body) {
  std::string recipient = OneLine(to);
  if (recipient.empty() || access(sendmail.c_str(), X_OK) != 0) return false;
  // Auto-Submitted (RFC 3834) keeps vacation programs from answering the daemon.
  int message = MessageFile("To: " + recipient + "\nSubject: " + OneLine(subject) +
                            "\nAuto-Submitted: auto-generated\n\n" + body);
  if (message < 0) return false;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(message, 0);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    close_range(3, ~0U, 0);  // none of the daemon's sockets or files
    execl(sendmail.c_str(), "sendmail", "-oi", "--", recipient.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(message);
  return pid > 0;
}

bool SendMail(const std::string& to, const std::string& subject, const std::string& body) {
  for (const char* path : kSendmailPaths)
    if (access(path, X_OK) == 0) return SendMailVia(path, to, subject, body);
  return false;
}

}  // namespace queue::daemon
