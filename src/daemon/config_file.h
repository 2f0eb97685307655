// ConfigFile: queued's options from a file as well as from its command line.
// CLI11 reads the file (INI or TOML, `key = value`, `#` comments); each key
// is a long option without its dashes (`spooldir = /var/spool/queue`,
// `host-timeout = 60`, `debug = true`). An option on the command line wins
// over the file. The default file may be missing; a file named with --config
// may not. A file that cannot be read, a key that is no option, a value an
// option refuses: each is one line on stderr naming the file (and the key),
// and queued exits with kConfigErrorExit before it sets anything up.
// packaging/queued.conf lists every key (a test keeps it complete).
#pragma once

#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace queue::daemon {

inline constexpr char kDefaultConfigFile[] = "/etc/queue/queued.conf";
// EX_CONFIG (sysexits.h): the unit file does not restart queued for it.
inline constexpr int kConfigErrorExit = 78;

// Adds `--config FILE` to `app`, default `default_path`. Options that make no
// sense in a file (--keygen, --version) are to be marked configurable(false).
void AddConfigFileOption(CLI::App& app, const std::string& default_path);

// Parses the command line and then the config file into `app`'s options.
// nullopt: go on. Otherwise the exit status, after --help's text or an error.
std::optional<int> ParseCommandLineAndConfigFile(CLI::App& app, int argc, char** argv,
                                                 const std::string& default_path);

}  // namespace queue::daemon
