// JobRunner: the execution side of a daemon. It admits jobs that this host's
// queues can run now, records them in the spool, starts one shepherd per job
// (in its own session, so jobs outlive the daemon) and records how each ends.
// Lives on the daemon's event loop; not thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <asio.hpp>

#include "daemon/group_commit.h"
#include "daemon/queue_table.h"
#include "spool/job_store.h"
#include "util/result.h"
#include "wire/channel.h"

namespace queue::daemon {

struct AdmitRequest {
  std::string origin_host;  // "" when submitted here
  uint64_t origin_job_id = 0;
  wire::JobSpec spec;
};

class JobRunner {
 public:
  using ShepherdChannel = wire::Channel<asio::local::stream_protocol::socket>;

  JobRunner(asio::io_context& io, spool::JobStore& store, GroupCommit& batch, QueueTable& queues,
            std::string self_host, std::string shepherd_path)
      : io_(io), store_(store), batch_(batch), queues_(queues), self_host_(std::move(self_host)),
        shepherd_path_(std::move(shepherd_path)) {}

  // Called with a notice for the queue's supervisor (a job started or ended).
  void OnNotice(std::function<void(const std::string& queue, const std::string& text)> callback) {
    on_notice_ = std::move(callback);
  }

  // Called once for every job that ends here (done or failed), after its record is updated.
  void OnJobEnded(std::function<void(const spool::JobRecord&)> callback) { on_ended_ = std::move(callback); }

  // Starts the job now, or says why this host will not; *permanent is set
  // when it never will (no such queue, root not allowed), not just not now.
  Result<uint64_t> Admit(AdmitRequest request, double load1, bool* permanent);


  // Sends one running job this action; false when it does not run here.
  bool ControlJob(uint64_t record_id, wire::ShepherdAction action, const std::string& message);

  // Sends every running job of the queue this action (and the user the message).
  void ControlQueue(const std::string& queue, wire::ShepherdAction action, const std::string& message);

 private:
  struct Running {
    uint64_t record_id;
    std::string queue;
    std::shared_ptr<ShepherdChannel> channel;
    bool finished = false;
  };

  Status SpawnShepherd(uint64_t record_id, uint64_t job_id, const wire::JobSpec& spec,
                       const profile::QueuePolicy& policy);
  void OnShepherdEvent(uint64_t record_id, std::string_view payload);
  void OnShepherdGone(uint64_t record_id, const std::string& reason);
  void Release(uint64_t record_id);

  asio::io_context& io_;
  spool::JobStore& store_;
  GroupCommit& batch_;
  QueueTable& queues_;
  std::string self_host_;
  std::string shepherd_path_;
  std::map<uint64_t, Running> shepherds_;  // by spool record id
  std::function<void(const spool::JobRecord&)> on_ended_;
  std::function<void(const std::string&, const std::string&)> on_notice_;
};

}  // namespace queue::daemon
