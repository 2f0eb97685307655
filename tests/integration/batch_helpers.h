// Helpers the batch-job integration tests share (they use gtest's checks, so
// they live here rather than in the cluster fixture, which benchmarks use too).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cluster_fixture.h"

namespace queue::testing {

// A new directory `name` in the cluster's directory, for a job's files.
inline std::string MakeDir(const TestCluster& cluster, const std::string& name) {
  std::string dir = cluster.dir() + "/" + name;
  std::filesystem::create_directories(dir);
  return dir;
}

// Submits with -r from `cwd` through host `host`; the job id printed, or 0
// (with a test failure).
inline uint64_t SubmitBatch(TestCluster& cluster, int host, const std::vector<std::string>& args,
                            const std::string& cwd, std::vector<std::string> env = {}) {
  std::vector<std::string> words{"-r"};
  words.insert(words.end(), args.begin(), args.end());
  auto run = cluster.Queue(host, words, {std::move(env), "", std::chrono::seconds(30), cwd});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  uint64_t id = 0;
  std::istringstream(run.out) >> id;
  EXPECT_NE(id, 0u) << "stdout: " << run.out << " stderr: " << run.err;
  return id;
}

// Keeps a stopped daemon from outliving a failed assertion in a stopped state.
struct ContinueOnExit {
  TestCluster& cluster;
  int host;
  ~ContinueOnExit() { cluster.SignalDaemon(host, SIGCONT); }
};

// Every job host `host` knows, finished ones included, by id.
inline std::map<uint64_t, nlohmann::json> AllJobs(TestCluster& cluster, int host) {
  std::map<uint64_t, nlohmann::json> jobs;
  auto run = cluster.Queue(host, {"--jobs", "--all", "--json"}, {{}, "", std::chrono::seconds(10), ""});
  auto list = JobsOf(run.out);
  if (run.exit_code != 0 || list.is_discarded()) return jobs;
  for (const auto& job : list)
    if (job["origin"] == cluster.entry(host)) jobs[job["number"].get<uint64_t>()] = job;
  return jobs;
}

inline bool Ended(const nlohmann::json& job) {
  std::string state = job["state"];
  return state == "done" || state == "failed" || state == "cancelled";
}

inline bool WaitForEnds(TestCluster& cluster, int host, const std::vector<uint64_t>& ids,
                        std::chrono::milliseconds timeout) {
  return WaitUntil(
      [&] {
        auto jobs = AllJobs(cluster, host);
        for (uint64_t id : ids)
          if (!jobs.count(id) || !Ended(jobs[id])) return false;
        return true;
      },
      timeout);
}

// Gives host `host`'s daemon a spool on a file system of its own, `size` big
// (tmpfs, in a mount namespace of the daemon's): what was in the spool is
// copied in first. The test reaches it through /proc/<pid>/root. A daemon
// started again gets a new file system with the spool as it was at the first
// start: for a daemon that is never restarted.
inline void SmallSpoolFor(ClusterOptions& options, int host, const std::string& size) {
  const std::string script =
      "for a; do [ \"$prev\" = --spooldir ] && d=$a; prev=$a; done; mkdir -p \"$d\" \"$d.keep\" && "
      "cp -a \"$d/.\" \"$d.keep/\" && mount -t tmpfs -o size=" + size + ",mode=0700 tmpfs \"$d\" && "
      "cp -a \"$d.keep/.\" \"$d/\" && exec \"$@\"";
  options.daemon_wrappers[host] = {"/usr/bin/unshare", "--mount", "--propagation", "private", "--",
                                   "/bin/sh", "-c", script, "sh"};
}

}  // namespace queue::testing
