// Helpers the batch-job integration tests share (they use gtest's checks, so
// they live here rather than in the cluster fixture, which benchmarks use too).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
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

}  // namespace queue::testing
