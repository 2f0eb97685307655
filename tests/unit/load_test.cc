// Tests of load sampling (the /proc/loadavg parser and the sampler on a file)
// and of the load table's freshness and placement accounting.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "load/load_sampler.h"
#include "load/load_table.h"

namespace queue::load {
namespace {

using namespace std::chrono_literals;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(LoadParse, ProcLoadavgLine) {
  auto load = ParseLoadavg("0.52 0.58 0.59 1/389 12345\n");
  ASSERT_TRUE(load.ok()) << load.message();
  EXPECT_DOUBLE_EQ(*load, 0.52);
}

TEST(LoadParse, OtherValidForms) {
  EXPECT_DOUBLE_EQ(ParseLoadavg("0.00 0.00 0.00 1/1 1").value(), 0.0);
  EXPECT_DOUBLE_EQ(ParseLoadavg("12").value(), 12.0);
  EXPECT_DOUBLE_EQ(ParseLoadavg("  \t3.25\n").value(), 3.25);
  EXPECT_DOUBLE_EQ(ParseLoadavg("7.5\t1 2").value(), 7.5);
}

TEST(LoadParse, RefusesNegativeNonFiniteAndJunk) {
  for (const char* bad : {"-0.5 0.1 0.1 1/1 1", "-1", "nan 1 1", "NaN", "inf", "-inf", "1e999",
                          "junk", "0.5x 1 1", "0,5 1 1", "x0.5", "1/389"}) {
    auto load = ParseLoadavg(bad);
    ASSERT_FALSE(load.ok()) << bad << " gave " << (load.ok() ? *load : 0.0);
    EXPECT_TRUE(Contains(load.message(), "bad load average")) << load.message();
  }
}

TEST(LoadParse, RefusesEmpty) {
  for (const char* empty : {"", " ", "\t \t", "\n"}) {
    auto load = ParseLoadavg(empty);
    EXPECT_FALSE(load.ok()) << '"' << empty << '"';
  }
  EXPECT_TRUE(Contains(ParseLoadavg("").message(), "empty")) << ParseLoadavg("").message();
}

class LoadSamplerFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("load_test." + std::to_string(getpid()) + "." +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::string path_;
};

TEST_F(LoadSamplerFile, ReadsTheFirstField) {
  std::ofstream(path_) << "1.75 0.80 0.40 2/400 999\n";
  LoadSampler sampler(path_);
  EXPECT_EQ(sampler.path(), path_);
  auto load = sampler.Load1();
  ASSERT_TRUE(load.ok()) << load.message();
  EXPECT_DOUBLE_EQ(*load, 1.75);

  // A simulation rewrites the file; every sample rereads it.
  std::ofstream(path_) << "4.00 0.80 0.40 2/400 999\n";
  EXPECT_DOUBLE_EQ(sampler.Load1().value(), 4.0);
}

TEST_F(LoadSamplerFile, MissingFileIsAnErrorNamingIt) {
  LoadSampler sampler(path_ + ".absent");
  auto load = sampler.Load1();
  ASSERT_FALSE(load.ok());
  EXPECT_TRUE(Contains(load.message(), path_ + ".absent")) << load.message();
}

TEST_F(LoadSamplerFile, EmptyOrBadFileIsAnErrorNamingIt) {
  std::ofstream(path_) << "";
  EXPECT_FALSE(LoadSampler(path_).Load1().ok());
  std::ofstream(path_) << "busy 1 1\n";
  auto load = LoadSampler(path_).Load1();
  ASSERT_FALSE(load.ok());
  EXPECT_TRUE(Contains(load.message(), path_)) << load.message();
  EXPECT_TRUE(Contains(load.message(), "busy")) << load.message();
}

TEST(LoadSampler, DefaultsToProcLoadavg) {
  LoadSampler sampler;
  EXPECT_EQ(sampler.path(), "/proc/loadavg");
  if (std::filesystem::exists("/proc/loadavg")) {
    auto load = sampler.Load1();
    ASSERT_TRUE(load.ok()) << load.message();
    EXPECT_GE(*load, 0.0);
  }
  EXPECT_GE(OnlineCpuCount(), 1u);
}

wire::LoadReport Report(const std::string& host, double load1, uint32_t running = 0) {
  wire::LoadReport r;
  r.host = host;
  r.load1 = load1;
  r.cpus = 4;
  r.queues.push_back({"now", running, 4, 4, 1.0, true});
  return r;
}

TEST(LoadTable, UpdateMakesAHostFresh) {
  const Clock::time_point t0{};
  LoadTable table(10s);
  EXPECT_EQ(table.Fresh("a", t0), nullptr);
  EXPECT_FALSE(table.IsFresh("a", t0));
  table.Update(Report("a", 0.5, 2), t0);
  const HostLoad* a = table.Fresh("a", t0);
  ASSERT_NE(a, nullptr);
  EXPECT_DOUBLE_EQ(a->report.load1, 0.5);
  EXPECT_EQ(a->report.queues.at(0).running, 2u);
  EXPECT_EQ(a->heard_at, t0);
  EXPECT_EQ(a->placements_since_report, 0u);
  EXPECT_EQ(table.Fresh("b", t0), nullptr);
  EXPECT_EQ(table.hosts().size(), 1u);
}

TEST(LoadTable, StaleAfterTheLimit) {
  const Clock::time_point t0 = Clock::time_point{} + 1000s;
  LoadTable table(10s);
  table.Update(Report("a", 0.5), t0);
  EXPECT_TRUE(table.IsFresh("a", t0 + 9s));
  EXPECT_TRUE(table.IsFresh("a", t0 + 10s));  // exactly at the limit: still fresh
  EXPECT_FALSE(table.IsFresh("a", t0 + 10s + 1ns));
  EXPECT_FALSE(table.IsFresh("a", t0 + 1h));
  // Stale hosts are kept (for status output), only not offered as fresh.
  EXPECT_EQ(table.hosts().count("a"), 1u);

  table.Update(Report("a", 0.7), t0 + 1h);
  ASSERT_TRUE(table.IsFresh("a", t0 + 1h + 5s));
  EXPECT_DOUBLE_EQ(table.Fresh("a", t0 + 1h)->report.load1, 0.7);
}

TEST(LoadTable, PlacementsCountUntilTheNextReport) {
  const Clock::time_point t0{};
  LoadTable table(10s);
  table.Update(Report("a", 0.0), t0);
  table.Update(Report("b", 0.0), t0);
  table.AddPlacement("a", t0);
  table.AddPlacement("a", t0);
  table.AddPlacement("b", t0);
  EXPECT_EQ(table.Fresh("a", t0)->placements_since_report, 2u);
  EXPECT_EQ(table.Fresh("b", t0)->placements_since_report, 1u);

  table.Update(Report("a", 0.3, 2), t0 + 1s);
  EXPECT_EQ(table.Fresh("a", t0 + 1s)->placements_since_report, 0u);
  EXPECT_EQ(table.Fresh("b", t0 + 1s)->placements_since_report, 1u);
}

TEST(LoadTable, PlacementOnAnUnknownHostIsIgnored) {
  LoadTable table(10s);
  table.AddPlacement("ghost", Clock::time_point{});
  EXPECT_TRUE(table.hosts().empty());
  table.Update(Report("ghost", 0.0), Clock::time_point{});
  EXPECT_EQ(table.hosts().at("ghost").placements_since_report, 0u);
}

TEST(LoadTable, ForgetRemovesOnlyThatHost) {
  const Clock::time_point t0{};
  LoadTable table(10s);
  table.Update(Report("a", 0.0), t0);
  table.Update(Report("b", 0.0), t0);
  table.Forget("a");
  table.Forget("never-heard");
  EXPECT_FALSE(table.IsFresh("a", t0));
  EXPECT_TRUE(table.IsFresh("b", t0));
  EXPECT_EQ(table.hosts().size(), 1u);
}

}  // namespace
}  // namespace queue::load
