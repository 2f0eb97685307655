// Reads the tables of docs/json-schema.md and checks a document of `queue
// --status --json` or `queue --jobs --json` against them: every key it has is
// documented for its object, and every key documented "always" is there,
// through nested objects and arrays. Shared by the unit and integration tests.
#pragma once

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace queue::testing {

struct DocumentedField {
  bool always = false;
  std::string type;    // as the table says it
  std::string object;  // the object it holds (or an array of), "" for a plain value
};
using DocumentedObjects = std::map<std::string, std::map<std::string, DocumentedField>>;

inline DocumentedObjects ReadJsonSchemaDoc(const std::string& path) {
  std::ifstream in(path);
  DocumentedObjects objects;
  std::string current;
  const std::regex heading(R"(^## Object `(\w+)`)");
  const std::regex row(R"(^\| `(\w+)` \| ([^|]+?) \| (always|optional) \|)");
  const std::regex named(R"(`(\w+)`)");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, heading)) {
      current = m[1];
      objects[current];
    } else if (!current.empty() && std::regex_search(line, m, row)) {
      DocumentedField field{m[3] == "always", m[2], ""};
      std::smatch object;
      std::string type = m[2];
      if (std::regex_search(type, object, named)) field.object = object[1];
      objects[current][m[1]] = field;
    }
  }
  return objects;
}

// What in `value` (an object of kind `object`) does not match the doc, one line each.
inline std::vector<std::string> SchemaViolations(const DocumentedObjects& doc, const std::string& object,
                                                 const nlohmann::json& value, const std::string& where = "$") {
  std::vector<std::string> problems;
  auto kind = doc.find(object);
  if (kind == doc.end()) return {where + ": object `" + object + "` is not documented"};
  if (!value.is_object()) return {where + ": not an object"};
  for (const auto& [key, field] : kind->second)
    if (field.always && !value.contains(key)) problems.push_back(where + "." + key + ": documented always, missing");
  for (const auto& [key, item] : value.items()) {
    auto field = kind->second.find(key);
    if (field == kind->second.end()) {
      problems.push_back(where + "." + key + ": not documented for `" + object + "`");
      continue;
    }
    const std::string& type = field->second.type;
    bool type_ok = type.starts_with("array")     ? item.is_array()
                   : type.starts_with("object")  ? item.is_object()
                   : type == "string"            ? item.is_string()
                   : type == "boolean"           ? item.is_boolean()
                   : type == "integer"           ? item.is_number_integer()
                   : type == "number"            ? item.is_number()
                                                 : false;
    if (!type_ok) problems.push_back(where + "." + key + ": not " + type + ": " + item.dump());
    if (field->second.object.empty()) continue;
    if (item.is_array())
      for (size_t i = 0; i < item.size(); ++i)
        for (auto& p : SchemaViolations(doc, field->second.object, item[i], where + "." + key + "[" + std::to_string(i) + "]"))
          problems.push_back(p);
    else if (item.is_object())
      for (auto& p : SchemaViolations(doc, field->second.object, item, where + "." + key)) problems.push_back(p);
  }
  return problems;
}

// Every key of every object seen in `value`, as "object.key": which documented
// fields real output showed.
inline void CollectKeys(const DocumentedObjects& doc, const std::string& object, const nlohmann::json& value,
                        std::set<std::string>& seen) {
  auto kind = doc.find(object);
  if (kind == doc.end() || !value.is_object()) return;
  for (const auto& [key, item] : value.items()) {
    seen.insert(object + "." + key);
    auto field = kind->second.find(key);
    if (field == kind->second.end() || field->second.object.empty()) continue;
    if (item.is_array())
      for (const auto& element : item) CollectKeys(doc, field->second.object, element, seen);
    else
      CollectKeys(doc, field->second.object, item, seen);
  }
}

}  // namespace queue::testing
