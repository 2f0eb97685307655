// For unit tests: a JobLedger over a fresh spool database in a temporary
// directory, its group commit on an event loop of the test's own (run it to
// commit); the directory is removed with it.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <asio.hpp>

#include "daemon/group_commit.h"
#include "daemon/job_ledger.h"

namespace queue::daemon {

struct TempLedger {
  std::string dir;
  asio::io_context io;
  std::unique_ptr<spool::JobStore> store;
  std::unique_ptr<GroupCommit> batch;
  std::unique_ptr<JobLedger> ledger;

  explicit TempLedger(const std::string& name = "ledger") {
    std::string templ = "/tmp/queue-" + name + "-XXXXXX";
    dir = mkdtemp(templ.data()) ? templ : std::string();
    auto opened = spool::JobStore::Open(dir + "/jobs.db");
    EXPECT_TRUE(opened.ok()) << opened.message();
    if (!opened.ok()) return;
    store = std::move(opened.value());
    batch = std::make_unique<GroupCommit>(io, *store, std::chrono::milliseconds(5));
    ledger = std::make_unique<JobLedger>(*store, *batch);
  }
  ~TempLedger() {
    ledger.reset();
    batch.reset();
    store.reset();
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  TempLedger(const TempLedger&) = delete;
  TempLedger& operator=(const TempLedger&) = delete;
};

}  // namespace queue::daemon
