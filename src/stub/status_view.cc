// Tables and documents of queue --status and queue --jobs.
#include "stub/status_view.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "util/printable.h"

namespace queue::stub {

using nlohmann::json;

namespace {

constexpr char kGreen[] = "32";
constexpr char kRed[] = "31";
constexpr char kYellow[] = "33";

// A field of the daemon's JSON as text, whatever its type, "" when absent.
std::string Text(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key)) return "";
  const json& v = object[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

size_t Columns(const std::string& text) {
  // UTF-8: every byte but the continuation bytes (10xxxxxx) starts a character.
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::string Fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string JobStateColour(const std::string& state) {
  if (state == "running" || state == "done") return kGreen;
  if (state == "waiting" || state == "moving" || state == "ending" || state == "suspended") return kYellow;
  if (state == "failed" || state == "cancelled" || state == "lost") return kRed;
  return "";
}

std::string MiB(uint64_t bytes) { return Fixed(static_cast<double>(bytes) / (1 << 20), 1); }

// A job's transfer in a few words: "restart files home from H: 12.0/40.0 MiB".
std::string TransferNote(const json& t) {
  if (!t.is_object()) return "";
  bool home = Text(t, "direction") == "home";
  std::string text = std::string("restart files ") + (home ? "home from " : "out to ") + Text(t, "host") + ": " +
                     MiB(t.value("bytes", uint64_t{0}));
  if (t.contains("size")) text += "/" + MiB(t.value("size", uint64_t{0}));
  text += " MiB";
  if (t.value("complete", false)) text += " (arrived)";
  return text;
}

}  // namespace

json StatusDocument(json daemon_status, const std::string& socket_path, const std::string& found_by) {
  json doc = daemon_status.is_object() ? std::move(daemon_status) : json::object();
  doc["schema"] = kStatusSchema;
  doc["socket"] = {{"path", socket_path}, {"found_by", found_by}};
  return doc;
}

json JobsDocument(json daemon_jobs) {
  return {{"schema", kJobsSchema}, {"jobs", daemon_jobs.is_array() ? std::move(daemon_jobs) : json::array()}};
}

bool UseColour(bool stdout_is_terminal, const char* no_color, const char* term) {
  if (!stdout_is_terminal) return false;
  if (no_color != nullptr && no_color[0] != '\0') return false;
  return term == nullptr || std::string(term) != "dumb";
}

std::string AlignedTable(const std::vector<std::vector<Cell>>& rows, bool colour) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], Columns(util::Printable(row[i].text)));
    }
  std::string out;
  for (size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (size_t i = 0; i < rows[r].size(); ++i) {
      std::string text = util::Printable(rows[r][i].text);
      size_t pad = i + 1 < rows[r].size() ? widths[i] - Columns(text) : 0;
      std::string sgr = r == 0 ? "1" : rows[r][i].colour;
      if (colour && !sgr.empty() && !text.empty())
        line += "\x1b[" + sgr + "m" + text + "\x1b[0m";
      else
        line += text;
      line += std::string(pad, ' ');
      if (i + 1 < rows[r].size()) line += "  ";
    }
    // A row whose last cells are empty leaves no blanks at its end.
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

std::string StatusText(const json& status, bool colour) {
  std::string out;
  const json socket = status.value("socket", json::object());
  out += "socket " + Text(socket, "path") + " (from " + Text(socket, "found_by") + "), host " + Text(status, "host") +
         "\n\n";
  std::vector<std::vector<Cell>> hosts{{{"HOST"}, {"STATE"}, {"LOAD"}, {"CPUS"}, {"QUEUE"}, {"RUN/MAX"}, {"ACCEPTS"}, {"WHY NOT"}}};
  for (const auto& h : status.value("hosts", json::array())) {
    bool alive = h.value("alive", false);
    std::vector<Cell> host{{Text(h, "host")}, {alive ? "up" : "down", alive ? kGreen : kRed}};
    // A large cluster knows the load of the hosts it asked lately only.
    const bool known = alive && h.contains("load1");
    host.push_back({known ? Fixed(h.value("load1", 0.0), 2) : "-"});
    host.push_back({known ? Text(h, "cpus") : "-"});
    json queues = h.value("queues", json::array());
    if (queues.empty()) hosts.push_back(host);
    for (const auto& q : queues) {
      auto row = host;
      bool accepting = q.value("accepting", true);
      row.push_back({Text(q, "name")});
      row.push_back({Text(q, "running") + "/" + Text(q, "maxexec")});
      row.push_back({accepting ? "yes" : "no", accepting ? kGreen : kRed});
      row.push_back({Text(q, "why")});
      hosts.push_back(std::move(row));
    }
  }
  out += AlignedTable(hosts, colour);
  std::string notes;
  for (const auto& q : status.value("queues", json::array()))
    for (const char* note : {"error", "closed", "suspended", "warning", "criu"})
      if (q.contains(note)) notes += "queue " + util::Printable(Text(q, "name")) + ": " + note + ": " +
                                     util::Printable(Text(q, note)) + "\n";
  if (!notes.empty()) out += "\n" + notes;
  json jobs = status.value("jobs", json::array());
  if (!jobs.empty()) out += "\n" + JobsText(JobsDocument(jobs), colour);
  return out;
}

std::string JobsText(const json& jobs, bool colour) {
  std::vector<std::vector<Cell>> rows{{{"JOB"}, {"STATE"}, {"QUEUE"}, {"HOST"}, {"EXIT"}, {"NAME"}, {"WHY / NOTE"}}};
  for (const auto& j : jobs.value("jobs", json::array())) {
    std::string state = Text(j, "state");
    std::string exit = j.contains("exit_code") ? Text(j, "exit_code")
                       : j.contains("signal")  ? "sig " + Text(j, "signal")
                                               : "-";
    std::string note = j.contains("message")       ? Text(j, "message")
                       : j.contains("waiting_for") ? "waiting: " + Text(j, "waiting_for")
                                                   : "";
    if (j.contains("transfer") && !j["transfer"].value("complete", false))
      note += (note.empty() ? "" : "; ") + TransferNote(j["transfer"]);
    rows.push_back({{Text(j, "id")}, {state, JobStateColour(state)}, {Text(j, "queue")}, {Text(j, "host")},
                    {exit}, {Text(j, "name")}, {note}});
  }
  return AlignedTable(rows, colour);
}

// "1-5,7,9-10": indices in ascending order, runs of consecutive ones as ranges.
std::string IndexRanges(const std::vector<unsigned>& indices) {
  std::string text;
  for (size_t i = 0; i < indices.size();) {
    size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    text += (text.empty() ? "" : ",") + std::to_string(indices[i]) + (j > i ? "-" + std::to_string(indices[j]) : "");
    i = j + 1;
  }
  return text;
}

// Job arrays shown compactly: the elements of one array in the same state,
// queue and host (and with no message of their own) as one row,
// "17.2_[1-40,42]"; other jobs as they are.
nlohmann::json CompactArrays(const nlohmann::json& jobs) {
  nlohmann::json rows = nlohmann::json::array();
  std::map<std::string, size_t> row_of;  // group key -> index in rows
  std::map<size_t, std::vector<unsigned>> indices;
  for (const auto& j : jobs) {
    if (!j.contains("array") || j.contains("message") || j.contains("exit_code") || j.contains("signal")) {
      rows.push_back(j);
      continue;
    }
    std::string key = j.value("array", "") + "|" + j.value("state", "") + "|" + j.value("queue", "") + "|" + j.value("host", "");
    auto [found, added] = row_of.emplace(key, rows.size());
    if (added) rows.push_back(j);
    indices[found->second].push_back(j.value("array_index", 0u));
  }
  for (auto& [row, list] : indices) {
    std::sort(list.begin(), list.end());
    rows[row]["id"] = rows[row].value("array", "") + "_" +
                      (list.size() == 1 ? std::to_string(list.front()) : "[" + IndexRanges(list) + "]");
    rows[row].erase("waiting_for");
  }
  return rows;
}

std::string KeptFor(int64_t seconds) {
  if (seconds % 86400 == 0) return std::to_string(seconds / 86400) + " day(s)";
  if (seconds % 3600 == 0) return std::to_string(seconds / 3600) + " hour(s)";
  return std::to_string(seconds) + " s";
}

std::string ProgressLine(const std::string& label, uint64_t bytes, uint64_t size, double bytes_per_second,
                         int width) {
  std::string rate = Fixed(std::isfinite(bytes_per_second) ? std::max(0.0, bytes_per_second) / (1 << 20) : 0.0, 1) +
                     " MiB/s";
  if (size == 0) return label + "  " + MiB(bytes) + " MiB  " + rate;
  bytes = std::min(bytes, size);
  int percent = static_cast<int>(bytes * 100 / size);
  std::string tail = "  " + std::to_string(percent) + "%  " + MiB(bytes) + "/" + MiB(size) + " MiB  " + rate;
  int bar = width - static_cast<int>(Columns(label) + tail.size()) - 4;  // "  [" and "]"
  if (bar < 10) return label + tail;  // too narrow for a bar
  bar = std::min(bar, 40);
  int filled = static_cast<int>(bytes * static_cast<uint64_t>(bar) / size);
  return label + "  [" + std::string(static_cast<size_t>(filled), '#') +
         std::string(static_cast<size_t>(bar - filled), '.') + "]" + tail;
}

}  // namespace queue::stub
