# Properties of single integration tests. ctest runs this file once the tests
# gtest_discover_tests found are defined (they are found at build time, so
# CMakeLists.txt cannot name them); integration_tests_TESTS lists them.
#
# Integration tests run side by side: each test process has loopback
# addresses of its own (cluster_fixture.h), and a test spends most of its time
# waiting for daemons and timers. Those below cannot, or should not:
#
# RUN_SERIAL, alone on the machine (ctest runs them once no other test runs):
#   Netns.*     make network namespaces and veth pairs with `ip netns`
#               (/run/netns is the machine's)
#   CriuTest.*  criu dumps and restores whole process trees, each under its
#               old pid, and probes the kernel (criu check)
#   SecurityTest.*  add and remove users (/etc/passwd's lock), and measure the
#               daemon's memory, descriptors and CPU under an attack
set(_serial_suites Netns CriuTest SecurityTest)
#
# RESOURCE_LOCK, one at a time of each kind (beside other tests):
#   big-files  hundreds of MiB written, hashed and moved: the disk, and a
#              core, busy for many seconds
#   many-jobs  hundreds of jobs, a burst of 45, or 18 daemons with their serf
#              agents: a core busy for long
# Two of a kind at once slow each other, and every test running then, whose
# daemons' heartbeats and timeouts are seconds. DebianPackage.* (a shell
# test, tests/packaging/CMakeLists.txt, which sets its own properties) takes
# big-files too: it unpacks a whole Debian root.
set(_big_files_tests
    MigrateTest.AOneGibRestartFileMovesIntact
    MigrateTest.AStalledRestartFileTransferIsSaidAndSoIsItsResumption
    MigrateTest.AJobCancelledWhileItsRestartFilesArePackedDoesNotGoOn
    MigrateTest.ATargetThatDiesMidTransferLeavesTheJobToGoOnWhereItWas
    MigrateTest.ACancelDuringThePackOutlivesARestartOfTheSubmitDaemon
    RemoteFeelStream.TwoHundredMegabytesThroughTheJobIntactWithBoundedMemory)
set(_many_jobs_tests
    BatchFaults.FiveHundredJobsSurviveRandomKillNine
    BatchFaults.FiveHundredJobsSurviveKillNineAHungHostAndAFullSpool
    Lifecycle.ThreeHundredBatchJobsDrainUnderADescriptorLimitOf256
    Burst.ABurstOfSubmissionsSpreadsOverIdleHosts
    JobArray.TwoHundredLinesFromAFileAllRunAndDeliverTheirOutputs
    Gossip.AboveSixteenHostsAnIdleDaemonHoldsNoConnectionPerPeer)
#
# COST: on a build that has not run its tests yet, ctest starts the costliest
# first (afterwards it goes by the times it measured), so that no long test
# starts last and ends the run late. About their seconds under ASan, with
# other tests beside them.
set(_long_tests
    BatchFaults.FiveHundredJobsSurviveKillNineAHungHostAndAFullSpool 100
    BatchFaults.FiveHundredJobsSurviveRandomKillNine 80
    Lifecycle.ThreeHundredBatchJobsDrainUnderADescriptorLimitOf256 40
    MigrateTest.AStalledRestartFileTransferIsSaidAndSoIsItsResumption 30
    RemoteFeelStream.TwoHundredMegabytesThroughTheJobIntactWithBoundedMemory 30
    MigrateTest.AOneGibRestartFileMovesIntact 30
    RemoteFeelSignal.SignalSentJustAsTheJobStarts 20
    MigrateTest.ACancelDuringThePackOutlivesARestartOfTheSubmitDaemon 30
    MigrateTest.APeriodicCopyLetsABatchJobOutliveItsHost 20
    Batch.AJobLostWithItsHostRunsAgainElsewhereWhenTheProfileSaysRestart 18
    MigrateTest.AComputationMovedTwiceEndsWithTheUninterruptedResult 18
    Burst.ABurstOfSubmissionsSpreadsOverIdleHosts 15)

# Only where integration_tests was built and listed (not in build-tsan, which
# builds the unit tests alone).
if(NOT integration_tests_TESTS)
  return()
endif()

# A test renamed or removed here would leave a stale name, and a test that
# needs the machine alone would run beside others: refuse to run instead.
function(_require_test name)
  list(FIND integration_tests_TESTS "${name}" index)
  if(index EQUAL -1)
    message(FATAL_ERROR "tests/integration/test_properties.cmake names ${name}, which integration_tests "
                        "does not have: update it")
  endif()
endfunction()

foreach(_suite IN LISTS _serial_suites)
  set(_found FALSE)
  foreach(_test IN LISTS integration_tests_TESTS)
    if(_test MATCHES "^${_suite}\\.")
      set_tests_properties("${_test}" PROPERTIES RUN_SERIAL TRUE)
      set(_found TRUE)
    endif()
  endforeach()
  if(NOT _found)
    message(FATAL_ERROR "tests/integration/test_properties.cmake: integration_tests has no suite ${_suite}")
  endif()
endforeach()

foreach(_test IN LISTS _big_files_tests)
  _require_test("${_test}")
  set_tests_properties("${_test}" PROPERTIES RESOURCE_LOCK big-files)
endforeach()
foreach(_test IN LISTS _many_jobs_tests)
  _require_test("${_test}")
  set_tests_properties("${_test}" PROPERTIES RESOURCE_LOCK many-jobs)
endforeach()

while(_long_tests)
  list(POP_FRONT _long_tests _test _cost)
  _require_test("${_test}")
  set_tests_properties("${_test}" PROPERTIES COST ${_cost})
endwhile()
