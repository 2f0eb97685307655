// ServiceNotifier: sd_notify(3) messages to systemd (see the header).
#include "daemon/service_notifier.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <iostream>

#include "util/log_priority.h"
#include "util/result.h"

namespace queue::daemon {

bool UnderServiceManager() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return socket != nullptr && *socket != '\0';
}

std::string ServiceStatusLine(size_t running, size_t waiting, size_t hosts_up, size_t hosts) {
  return std::to_string(running) + (running == 1 ? " job" : " jobs") + " running, " + std::to_string(waiting) +
         " waiting; " + std::to_string(hosts_up) + " of " + std::to_string(hosts) + (hosts == 1 ? " host" : " hosts") +
         " up";
}

ServiceNotifier::ServiceNotifier() : enabled_(UnderServiceManager()) {}

void ServiceNotifier::Ready() { Send("READY=1"); }
void ServiceNotifier::Reloading() { Send("RELOADING=1"); }
void ServiceNotifier::Stopping() { Send("STOPPING=1"); }

void ServiceNotifier::Status(const std::string& line) {
  if (line == last_status_) return;
  last_status_ = line;
  Send("STATUS=" + line);
}

void ServiceNotifier::Send(const std::string& message) {
  if (!enabled_) return;
  // 0: keep $NOTIFY_SOCKET, for the messages still to come.
  int sent = sd_notify(0, message.c_str());
  if (sent > 0 || failure_logged_) return;
  failure_logged_ = true;
  std::cerr << util::kLogWarning << "queued: cannot notify the service manager (NOTIFY_SOCKET): "
            << (sent < 0 ? ErrnoText(-sent) : std::string("no socket")) << "\n";
}

}  // namespace queue::daemon
