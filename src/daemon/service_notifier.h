// ServiceNotifier: what queued tells the service manager that started it,
// over systemd's notification protocol (sd_notify(3), Type=notify):
//   READY=1      once a client could be served (sockets listening, spool open),
//                and again when a reload (SIGHUP) is done;
//   RELOADING=1  when a reload begins;
//   STOPPING=1   when it begins to stop;
//   STATUS=...   a short line for `systemctl status`, sent when it changes.
// Without $NOTIFY_SOCKET (not started by systemd as Type=notify) it sends
// nothing. A message that cannot be sent is logged once, and the daemon goes
// on: the service manager's view is not worth stopping a cluster for.
//
// Not thread-safe: used from the daemon's event loop.
#pragma once

#include <cstddef>
#include <string>

namespace queue::daemon {

// Whether a service manager waits for our notifications ($NOTIFY_SOCKET).
// Then queued stays in the foreground: systemd watches the process it started.
bool UnderServiceManager();

// "3 jobs running, 2 waiting; 3 of 3 hosts up".
std::string ServiceStatusLine(size_t running, size_t waiting, size_t hosts_up, size_t hosts);

class ServiceNotifier {
 public:
  ServiceNotifier();

  void Ready();
  void Reloading();
  void Stopping();
  // Sent only when it differs from the last line sent.
  void Status(const std::string& line);

 private:
  void Send(const std::string& message);

  bool enabled_;
  bool failure_logged_ = false;
  std::string last_status_;
};

}  // namespace queue::daemon
