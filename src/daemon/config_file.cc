// ConfigFile: CLI11's config-file support, with errors that name the file and key.
#include "daemon/config_file.h"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string_view>

#include "util/log_priority.h"
#include "util/result.h"

namespace queue::daemon {

namespace {

constexpr std::string_view kOption = "--config";

struct ConfigPath {
  std::string path;
  bool named = false;  // on the command line: it must exist
};

// The file --config names (the last one, as CLI11 takes it), else the default.
ConfigPath FindConfigPath(int argc, char** argv, const std::string& default_path) {
  ConfigPath found{default_path, false};
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == kOption && i + 1 < argc) {
      found = {argv[++i], true};
    } else if (arg.starts_with(std::string(kOption) + "=")) {
      found = {std::string(arg.substr(kOption.size() + 1)), true};
    }
  }
  return found;
}

// Why the file cannot be read, or "" when it can (or is the default and absent).
std::string Unreadable(const ConfigPath& config) {
  std::error_code ec;
  if (!config.named && !std::filesystem::exists(config.path, ec)) return "";
  std::ifstream in(config.path);
  if (!in) return "cannot read it: " + ErrnoText(errno);
  if (std::filesystem::is_directory(config.path, ec)) return "cannot read it: it is a directory";
  return "";
}

// The option a key sets, as CLI11 looks it up; nullptr when there is none.
const CLI::Option* OptionForKey(const CLI::App& app, const std::string& key) {
  const CLI::Option* option = app.get_option_no_throw("--" + key);
  if (option == nullptr && key.size() == 1) option = app.get_option_no_throw("-" + key);
  return option;
}

// "--host-timeout: Value 0 not in range" reads as "host-timeout: ...": a key.
std::string AsKeyMessage(std::string message) {
  if (message.starts_with("--")) message.erase(0, 2);
  return message;
}

// What is wrong with the file, or "" when it is the command line that is wrong.
// Parses the file alone, so `app`'s options are left as the file sets them.
std::string FileFault(CLI::App& app, const ConfigPath& config) {
  std::error_code ec;
  if (!config.named && !std::filesystem::exists(config.path, ec)) return "";
  try {
    for (const CLI::ConfigItem& item : CLI::ConfigINI().from_file(config.path)) {
      if (item.name == "++" || item.name == "--") continue;  // a [section]'s edges
      const CLI::Option* option = item.parents.empty() ? OptionForKey(app, item.name) : nullptr;
      if (option == nullptr) return "unknown key '" + item.fullname() + "'";
      if (!option->get_configurable()) return "key '" + item.fullname() + "' has no place in a config file";
    }
    app.clear();
    std::vector<std::string> args{config.path, std::string(kOption)};  // CLI11 takes them last first
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return AsKeyMessage(e.what());
  }
  return "";
}

}  // namespace

void AddConfigFileOption(CLI::App& app, const std::string& default_path) {
  app.set_config(std::string(kOption), default_path,
                 "read options from FILE (key = value, keys as the long options); the command line wins")
      ->type_name("FILE")
      ->capture_default_str();
  app.allow_config_extras(CLI::config_extras_mode::error);
}

std::optional<int> ParseCommandLineAndConfigFile(CLI::App& app, int argc, char** argv,
                                                 const std::string& default_path) {
  const ConfigPath config = FindConfigPath(argc, argv, default_path);
  if (std::string why = Unreadable(config); !why.empty()) {
    std::cerr << util::kLogErr << "queued: config file " << config.path << ": " << why << "\n";
    return kConfigErrorExit;
  }
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::Success& e) {  // --help: its text on stdout
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (std::string fault = FileFault(app, config); !fault.empty()) {
      std::cerr << util::kLogErr << "queued: config file " << config.path << ": " << fault << "\n";
      return kConfigErrorExit;
    }
    // One line per write: the log stream escapes a newline inside one.
    std::cerr << util::kLogErr << "queued: " << e.what() << "\n";
    std::cerr << "queued: see queued --help\n";
    return e.get_exit_code();
  }
}

}  // namespace queue::daemon
