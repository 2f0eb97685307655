// The search for the local daemon's socket (see daemon_socket.h).
#include "stub/daemon_socket.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace queue::stub {

namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// `socket PATH` from the config file, "" when there is none.
std::string SocketFromConfig(const std::string& config, const std::string& home) {
  std::ifstream in(config);
  for (std::string line; std::getline(in, line);) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string key, path;
    if (!(words >> key >> path) || key != "socket") continue;
    if (path.starts_with("~/") && !home.empty()) path = home + path.substr(1);
    return path;
  }
  return "";
}

}  // namespace

SocketSearchPlaces PlacesFromEnvironment(const std::string& option) {
  SocketSearchPlaces places;
  places.option = option;
  places.env_socket = Env("QUEUE_SOCKET");
  places.home = Env("HOME");
  places.queue_home = Env("QUEUE_HOME");
  places.xdg_config_home = Env("XDG_CONFIG_HOME");
  return places;
}

DaemonSocket FindDaemonSocket(const SocketSearchPlaces& places,
                              const std::function<bool(const std::string& path)>& answers) {
  // A socket the user names is used as named: an error then speaks of it alone.
  if (!places.option.empty()) return {places.option, "--socket"};
  if (!places.env_socket.empty()) return {places.env_socket, "$QUEUE_SOCKET"};
  std::vector<DaemonSocket> candidates{{places.system_socket, "the system default"}};
  std::string user_home = !places.queue_home.empty() ? places.queue_home
                          : !places.home.empty()     ? places.home + "/.queue"
                                                     : "";
  if (!user_home.empty())
    candidates.push_back({user_home + "/queued.sock", "the per-user cluster of ./run.sh (" + user_home + ")"});
  std::string config_dir = !places.xdg_config_home.empty() ? places.xdg_config_home
                           : !places.home.empty()          ? places.home + "/.config"
                                                           : "";
  std::string config = config_dir.empty() ? "" : config_dir + "/queue/config";
  if (!config.empty()) {
    std::string path = SocketFromConfig(config, places.home);
    if (!path.empty()) candidates.push_back({path, "the config file " + config});
  }
  for (const auto& candidate : candidates)
    if (answers(candidate.path)) return candidate;
  std::string tried;
  for (const auto& candidate : candidates) tried += (tried.empty() ? "" : ", ") + candidate.path;
  if (!config.empty() && candidates.back().found_by.find("config") == std::string::npos)
    tried += " (and " + config + " names none)";
  return {candidates.front().path, "no daemon answered at " + tried + "; set QUEUE_SOCKET or --socket"};
}

DaemonSocket FindDaemonSocket(const std::string& option) {
  return FindDaemonSocket(PlacesFromEnvironment(option), SocketAnswers);
}

bool SocketAnswers(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) return false;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool answered = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  close(fd);
  return answered;
}

}  // namespace queue::stub
