// JobRequests: users' requests about one job (`queue --cancel`, `--migrate`,
// `--output`), by its cluster id ("17.2"); --cancel also takes a job array's
// id (all of it) or one element ("17.2_5"). A job submitted here is answered
// here; one submitted on another host is forwarded to that host, which owns
// it (ForwardRequest), and a request forwarded here is answered or refused,
// never forwarded again. A user sees and acts on their own jobs only (root:
// any); who asks comes from the kernel, or from the peer that read its own
// socket.
//
// Lifetime: belongs to the daemon. Every answer goes through `reply`, from the
// event loop (never inline in the caller's stack for a forwarded or committed
// answer); `reply` must itself hold its client weakly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <asio.hpp>

#include "daemon/client_service.h"
#include "daemon/job_finisher.h"
#include "daemon/job_ledger.h"
#include "daemon/job_names.h"
#include "daemon/job_runner.h"
#include "daemon/peer_link.h"
#include "util/result.h"
#include "wire/messages.h"

namespace queue::daemon {

// What answering needs of the rest of the daemon.
struct JobRequestContext {
  asio::io_context& io;
  JobLedger& ledger;
  const JobNames& names;
  JobRunner& runner;
  JobFinisher& finisher;
  std::string self;
  std::string hosts_file;  // named when a job's host number is not in it
  std::function<std::shared_ptr<PeerLink>(const std::string& host)> link_to;  // null when not a peer
  // A job that waits here is cancelled: off the waiting list, its stub told
  // `notice`, its record closed as cancelled for `why`.
  std::function<void(uint64_t record_id, const std::string& notice, const std::string& why)> cancel_waiting;
  // Its next placement goes to `host` (queue --migrate ID HOST).
  std::function<void(uint64_t record_id, const std::string& host)> move_to;
  std::function<bool(const std::string& queue)> others_take_restarts;
  std::function<Result<std::string>(const std::string& option)> resolve_host;  // a -h style host name
};

class JobRequests {
 public:
  explicit JobRequests(JobRequestContext context) : c_(std::move(context)) {}

  // A Cancel/Migrate/OutputRequest (undecoded), answered through `reply` with
  // an encoded StatusReply, OutputReply or ErrorReply.
  void Answer(const Caller& who, wire::MessageType type, std::string_view payload, bool forwarded,
              JobRequestReply reply);

 private:
  void Forward(const Caller& who, const wire::JobId& id, uint32_t element, wire::MessageType type,
               const std::string& migrate_host, JobRequestReply reply);
  // A job, or every waiting and running element of the array it heads.
  Result<std::string> Cancel(const Caller& who, uint64_t number, const std::string& label);
  // The element of index `index` of array `array` ("17.2_5").
  Result<std::string> CancelElement(const Caller& who, uint64_t array, uint32_t index, const std::string& label);
  Result<std::string> CancelArray(const Caller& who, const spool::JobRecord& head, const std::string& label);
  Result<std::string> CancelOne(const spool::JobRecord& r, const std::string& label);
  Result<std::string> Migrate(const Caller& who, uint64_t number, const std::string& label, const std::string& host);
  Result<wire::OutputReply> OutputOf(const Caller& who, uint64_t number, const std::string& label);
  // The caller's job submitted here with this number (any job, for root).
  Result<spool::JobRecord> CallersJob(const Caller& who, uint64_t number, const std::string& label);

  JobRequestContext c_;
};

}  // namespace queue::daemon
