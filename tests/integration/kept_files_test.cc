// End-to-end tests of what a submit host keeps between a job's runs, when it
// is damaged or deleted on disk before it is used: a restart bundle with a
// flipped byte is not restored into the job's cwd (the job goes on from the
// checkpoint before, and its owner is told), and a deleted output piece is
// reported in the job's record and output, not silently left out.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "cluster_fixture.h"

namespace queue::testing {
namespace {

using namespace std::chrono_literals;

// restartflagpos last: the command is `sh -c SCRIPT sh`, so the flag is $1.
// loadsched 10: a test holds a requeued job back by raising both hosts' load.
const std::string kProfile = "checkpointmode 2\nrestartmode 1\nrestartflag --resume\nrestartflagpos last\n"
                             "checkpointgrace 10\nloadsched 10\n";

// Each run says how it began, marks ready.N once it can take a checkpoint,
// and at the checkpoint saves "state-of-run-N" and ends once the test creates
// go.N (so the test can make ready what the next run meets); run `last` ends
// by itself once the test creates `finish`.
std::string Script(int last) {
  return "run=${QUEUE_RESTART_COUNT:-0}; "
         "if [ \"$1\" = --resume ]; then echo \"run $run resumed from $(cat \"$QUEUE_RESTART_FILE\")\"; "
         "else echo \"run $run from the beginning\"; fi; "
         "if [ $run = " + std::to_string(last) + " ]; then while [ ! -e finish ]; do sleep 0.1; done; exit 0; fi; "
         "trap 'echo state-of-run-$run > \"$QUEUE_RESTART_FILE\"; touch saved.$run; "
         "while [ ! -e go.$run ]; do sleep 0.1; done; exit 0' USR2; "
         "touch ready.$run; while :; do sleep 0.1; done";
}

uint64_t Submit(TestCluster& cluster, const std::string& cwd, const std::string& name, int last) {
  auto submitted = cluster.Queue(
      0, {"-r", "-h", cluster.entry(1), "-j", name, "--", "sh", "-c", Script(last), "sh"}, {{}, "", 10s, cwd});
  EXPECT_EQ(submitted.exit_code, 0) << submitted.err;
  return submitted.exit_code == 0 ? std::stoull(submitted.out) : 0;
}

// Moves job `id` to host `to` once run `run` is ready for it.
void MoveAfterRun(TestCluster& cluster, const std::string& cwd, uint64_t id, int run, int to) {
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(cwd + "/ready." + std::to_string(run)); }, 30s))
      << run << cluster.log(0) << cluster.log(1);
  std::vector<std::string> words{"--migrate", std::to_string(id)};
  if (to >= 0) words.push_back(cluster.entry(to));
  auto asked = cluster.Queue(0, words);
  ASSERT_EQ(asked.exit_code, 0) << asked.err;
}

// Flips the first byte of `needle` in the file at `path`, in place.
bool FlipFirstByteOf(const std::string& path, const std::string& needle) {
  std::string bytes = ReadFile(path);
  size_t at = bytes.find(needle);
  if (at == std::string::npos) return false;
  // In place, one byte, as bit rot does it: rewriting the whole file would
  // show it 0 bytes long for a moment, and a check of it then finds another
  // damage than the one this test is about (seen under ASan in CI).
  const char flipped = static_cast<char>(bytes[at] ^ 0x20);  // "state" becomes "State"
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool written = pwrite(fd, &flipped, 1, static_cast<off_t>(at)) == 1;
  close(fd);
  return written;
}

bool Done(TestCluster& cluster, uint64_t id) {
  auto job = JobOn(cluster, 0, id);
  return !job.is_null() && job["state"] == "done";
}

// Two checkpoints kept; the second bundle is damaged while the job waits to go
// on: it goes on from the first, and its record and the log say why.
TEST(KeptFiles, ADamagedRestartBundleGivesWayToThePreviousOneAndTheOwnerIsTold) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kProfile});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  WriteFile(cwd + "/go.0", "");
  uint64_t id = Submit(*cluster, cwd, "bundles", 2);
  ASSERT_NE(id, 0u);
  MoveAfterRun(*cluster, cwd, id, 0, 0);  // its first bundle comes home from host 1
  MoveAfterRun(*cluster, cwd, id, 1, -1);  // its second is packed here
  // Both hosts too loaded for new jobs once it has saved: it waits to go on.
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(cwd + "/saved.1"); }, 30s)) << cluster->log(0);
  cluster->SetLoad(0, 20);
  cluster->SetLoad(1, 20);
  // Evidence, not a pause: host 0 sees both loads.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto seen = nlohmann::json::parse(cluster->Queue(0, {"--status", "--json"}).out, nullptr, false);
        if (seen.is_discarded() || seen["hosts"].size() != 2) return false;
        for (const auto& h : seen["hosts"])
          if (!h.contains("load1") || h["load1"] != 20) return false;
        return true;
      },
      10s));
  WriteFile(cwd + "/go.1", "");
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto job = JobOn(*cluster, 0, id);
        return !job.is_null() && job["state"] == "waiting" && job.value("restarts", 0) == 2;
      },
      30s))
      << JobOn(*cluster, 0, id).dump() << cluster->log(0);
  const std::string bundle = cluster->spool(0) + "/.queued/restart/" + std::to_string(id) + ".qrb";
  ASSERT_TRUE(FlipFirstByteOf(bundle, "state-of-run-1")) << ReadFile(bundle);
  cluster->SetLoad(0, 0);
  cluster->SetLoad(1, 0);
  WriteFile(cwd + "/finish", "");
  ASSERT_TRUE(WaitUntil([&] { return Done(*cluster, id); }, 30s)) << JobOn(*cluster, 0, id).dump() << cluster->log(0);
  const std::string output = ReadFile(cwd + "/bundles.o" + JobLabel(id));
  EXPECT_EQ(output.find("State-of-run-1"), std::string::npos) << "it went on from the damaged bundle:\n" << output;
  EXPECT_NE(output.find("run 2 resumed from state-of-run-0"), std::string::npos) << output << cluster->log(0);
  const std::string message = JobOn(*cluster, 0, id).value("message", "");
  EXPECT_NE(message.find("restart files kept from its last checkpoint are unusable"), std::string::npos) << message;
  EXPECT_NE(message.find("it goes on from those of the checkpoint before"), std::string::npos) << message;
  EXPECT_NE(cluster->log(0).find("unusable (its SHA-256 is not the one it was kept with)"), std::string::npos)
      << cluster->log(0);
}

// The output of its first run, kept at the submit host since its checkpoint,
// is deleted before the job ends: its output file and record say so.
TEST(KeptFiles, ADeletedOutputPieceIsReportedInTheOutputAndTheRecord) {
  auto cluster = TestCluster::Start(2, ClusterOptions{{}, kProfile});
  ASSERT_TRUE(cluster->WaitForView(15s));
  std::string cwd = cluster->dir() + "/work";
  std::filesystem::create_directories(cwd);
  WriteFile(cwd + "/go.0", "");
  uint64_t id = Submit(*cluster, cwd, "pieces", 1);
  ASSERT_NE(id, 0u);
  MoveAfterRun(*cluster, cwd, id, 0, 0);
  const std::string piece = cluster->spool(0) + "/.queued/restart/" + std::to_string(id) + ".out.0";
  // Kept: in place and sealed (a piece that has no seal yet was never kept,
  // and its absence is no loss to report).
  ASSERT_TRUE(WaitUntil(
      [&] {
        return JobOn(*cluster, 0, id)["state"] == "running" && std::filesystem::exists(piece) &&
               std::filesystem::exists(piece + ".sha256");
      },
      30s))
      << JobOn(*cluster, 0, id).dump() << cluster->log(0);
  ASSERT_NE(ReadFile(piece).find("run 0 from the beginning"), std::string::npos) << ReadFile(piece);
  ASSERT_EQ(::unlink(piece.c_str()), 0);
  WriteFile(cwd + "/finish", "");
  const std::string output_file = cwd + "/pieces.o" + JobLabel(id);
  ASSERT_TRUE(WaitUntil([&] { return Done(*cluster, id) && std::filesystem::exists(output_file); }, 30s))
      << JobOn(*cluster, 0, id).dump() << cluster->log(0);
  const std::string output = ReadFile(output_file);
  EXPECT_NE(output.find("[queue: its output from run 0 is missing: it is gone from the spool"), std::string::npos)
      << output;
  EXPECT_NE(output.find("run 1 resumed from state-of-run-0"), std::string::npos) << output;
  std::string message;
  EXPECT_TRUE(WaitUntil(
      [&] {
        message = JobOn(*cluster, 0, id).value("message", "");
        return message.find("its output from run 0 is missing") != std::string::npos;
      },
      10s))
      << message;
}

}  // namespace
}  // namespace queue::testing
