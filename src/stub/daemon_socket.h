// Which Unix socket the local queued listens on, as `queue` and `qsh` find it.
//
// Named: the --socket option, else $QUEUE_SOCKET. Without either (GNU Parallel,
// and any tool that cleans the environment of the commands it runs, drops
// QUEUE_SOCKET) the first of these places that a daemon answers on:
//   1. the system default, /run/queue/queued.sock;
//   2. the per-user cluster that ./run.sh starts: ${QUEUE_HOME:-~/.queue}/queued.sock;
//   3. the socket named by the per-user config file
//      ${XDG_CONFIG_HOME:-~/.config}/queue/config, a line `socket PATH`
//      (`#` starts a comment; PATH may start with ~/).
// `queue --status` says which socket it used and how it found it.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace queue::stub {

struct DaemonSocket {
  std::string path;
  std::string found_by;  // "--socket", "$QUEUE_SOCKET", "the system default", ...
};

// What the search reads from the environment, so that tests can give their own.
struct SocketSearchPlaces {
  std::string option;           // --socket
  std::string env_socket;       // $QUEUE_SOCKET
  std::string home;             // $HOME
  std::string queue_home;       // $QUEUE_HOME
  std::string xdg_config_home;  // $XDG_CONFIG_HOME
  std::string system_socket = "/run/queue/queued.sock";
};
SocketSearchPlaces PlacesFromEnvironment(const std::string& option);

// The socket to use. When no place answers, the first place searched, with
// found_by saying every place that was tried, for the error message.
DaemonSocket FindDaemonSocket(const SocketSearchPlaces& places,
                              const std::function<bool(const std::string& path)>& answers);
// The same, from this process's environment, probing each candidate with connect().
DaemonSocket FindDaemonSocket(const std::string& option);

// Whether a daemon (anything) accepts a connection on the Unix socket at path.
bool SocketAnswers(const std::string& path);

}  // namespace queue::stub
