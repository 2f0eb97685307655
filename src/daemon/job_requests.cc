// Users' requests about one job: cancel, migrate, output; forwarded to the job's submit host.
#include "daemon/job_requests.h"

namespace queue::daemon {

// A user's cancel, migrate or output request, answered through `reply` (an
// encoded StatusReply, OutputReply or ErrorReply). A job submitted on another
// host is asked of that host, which owns it; a request forwarded here is
// answered here or refused, never forwarded again.
void JobRequests::Answer(const Caller& who, wire::MessageType type, std::string_view payload,
                                  bool forwarded, JobRequestReply reply) {
  auto error = [&reply](const std::string& why) {
    reply(wire::MessageType::kErrorReply, wire::EncodePayload(wire::ErrorReply{why}));
  };
  wire::JobId id;
  uint32_t element = wire::kNoElement;
  std::string migrate_host;
  if (type == wire::MessageType::kCancelRequest) {
    auto request = wire::DecodePayload<wire::CancelRequest>(payload);
    if (!request.ok()) return error(request.message());
    id = request->job;
    element = request->element;
  } else if (type == wire::MessageType::kOutputRequest) {
    auto request = wire::DecodePayload<wire::OutputRequest>(payload);
    if (!request.ok()) return error(request.message());
    id = request->job;
  } else {
    auto request = wire::DecodePayload<wire::MigrateRequest>(payload);
    if (!request.ok()) return error(request.message());
    id = request->job;
    migrate_host = request->host;
  }
  id = c_.names.Complete(id);
  if (id.host != c_.names.SelfNumber()) {
    if (forwarded) return error("job " + wire::FormatJobId(id) + " was not submitted on " + c_.self);
    return Forward(who, id, element, type, migrate_host, std::move(reply));
  }
  const std::string label = element == wire::kNoElement ? wire::FormatJobId(id) : wire::FormatElement(id, element);
  if (type == wire::MessageType::kOutputRequest) {
    auto output = OutputOf(who, id.number, label);
    if (!output.ok()) return error(output.message());
    // Asked on another host: the file is here, and there only on a shared file system.
    if (forwarded && !output->path.empty() && output->message.empty())
      output->message = "job " + label + "'s output is " + output->path + " on " + c_.self;
    return reply(wire::MessageType::kOutputReply, wire::EncodePayload(*output));
  }
  if (type == wire::MessageType::kMigrateRequest) {
    auto done = Migrate(who, id.number, label, migrate_host);
    if (!done.ok()) return error(done.message());
    return reply(wire::MessageType::kStatusReply, wire::EncodePayload(wire::StatusReply{*done}));
  }
  auto done = element != wire::kNoElement ? CancelElement(who, id.number, element, label) : Cancel(who, id.number, label);
  if (!done.ok()) return error(done.message());
  // Answered once the cancel is on disk: it must outlive a daemon restart.
  c_.ledger.AfterCommit([reply = std::move(reply), said = *done](const Status& committed) {
    if (!committed.ok())
      return reply(wire::MessageType::kErrorReply, wire::EncodePayload(wire::ErrorReply{"spool: " + committed.message()}));
    reply(wire::MessageType::kStatusReply, wire::EncodePayload(wire::StatusReply{said}));
  });
}

void JobRequests::Forward(const Caller& who, const wire::JobId& id, uint32_t element, wire::MessageType type,
                          const std::string& migrate_host, JobRequestReply reply) {
  // How long the submit host may take: an output of up to 8 MiB read from its spool.
  constexpr auto kForwardTimeout = std::chrono::seconds(30);
  const std::string host = c_.names.HostOf(id.host);
  auto link = host.empty() ? nullptr : c_.link_to(host);
  if (!link) {
    std::string why = "job " + wire::FormatJobId(id) + ": the hosts file " + c_.hosts_file + " has no host " +
                      std::to_string(id.host) + " (it lists " + std::to_string(c_.names.HostCount()) + ")";
    // From the loop, as a forwarded answer would come.
    return asio::post(c_.io, [reply = std::move(reply), why] {
      reply(wire::MessageType::kErrorReply, wire::EncodePayload(wire::ErrorReply{why}));
    });
  }
  // The request names the job as its submit host numbers it, host included.
  std::string named = type == wire::MessageType::kCancelRequest   ? wire::EncodePayload(wire::CancelRequest{id, element})
                      : type == wire::MessageType::kOutputRequest ? wire::EncodePayload(wire::OutputRequest{id})
                                                                  : wire::EncodePayload(wire::MigrateRequest{id, migrate_host});
  link->Forward(wire::ForwardRequest{0, who.uid, who.gid, type, std::move(named)},
                        std::chrono::duration_cast<std::chrono::milliseconds>(kForwardTimeout), std::move(reply));
}

// The id of an array (its first element's) cancels every element that waits
// or runs, as Slurm's scancel ARRAYID does.
Result<std::string> JobRequests::Cancel(const Caller& who, uint64_t number, const std::string& label) {
  auto record = CallersJob(who, number, label);
  if (!record.ok()) return record.error();
  if (record->array_id == record->id) return CancelArray(who, *record, label);
  return CancelOne(*record, label);
}

Result<std::string> JobRequests::CancelElement(const Caller& who, uint64_t array, uint32_t index,
                                               const std::string& label) {
  spool::JobFilter filter;
  filter.array_id = array;
  filter.array_index = index;
  filter.local_origin = true;
  if (who.uid != 0) filter.uid = who.uid;
  auto found = c_.ledger.List(filter);
  if (!found.ok()) return Fail("spool: " + found.message());
  if (found->empty()) return Fail("you have no job " + label + " (it would have been submitted on " + c_.self + ")");
  return CancelOne(found->front(), label);
}

Result<std::string> JobRequests::CancelArray(const Caller& who, const spool::JobRecord& head, const std::string& label) {
  spool::JobFilter filter;
  filter.array_id = head.id;
  filter.local_origin = true;
  filter.states = {spool::JobState::kWaiting, spool::JobState::kRunning};
  if (who.uid != 0) filter.uid = who.uid;
  auto elements = c_.ledger.List(filter);
  if (!elements.ok()) return Fail("spool: " + elements.message());
  if (elements->empty()) return Fail("job array " + label + " has no element waiting or running");
  size_t waiting = 0, running = 0;
  std::string failures;
  for (const auto& element : *elements) {
    const std::string element_label = wire::FormatElement(c_.names.IdOf(head), element.array_index);
    auto done = CancelOne(element, element_label);
    if (!done.ok()) {
      failures += (failures.empty() ? "" : "; ") + done.message();
      continue;
    }
    ++(element.state == spool::JobState::kWaiting ? waiting : running);
  }
  std::string said = "cancelled job array " + label + ": " + std::to_string(waiting) + " waiting, " +
                     std::to_string(running) + " running told to stop";
  if (failures.empty()) return said;
  if (waiting + running == 0) return Fail(failures);
  return said + " (not: " + failures + ")";
}

Result<std::string> JobRequests::CancelOne(const spool::JobRecord& r, const std::string& label) {
  if (r.state != spool::JobState::kWaiting && r.state != spool::JobState::kRunning)
    return Fail("job " + label + " is not waiting or running (it is " + std::string(spool::ToString(r.state)) + ")");
  const std::string notice = "[job " + label + " cancelled by its owner]";
  if (r.state == spool::JobState::kWaiting) {
    // Offered without an answer: the host may have it; tell it too.
    if (auto link = c_.link_to(r.exec_host)) link->SendCancel(wire::CancelJob{r.id});
    c_.cancel_waiting(r.id, notice, "cancelled by its owner while it waited");
    return "cancelled job " + label + " (it had not started)";
  }
  bool sent = r.exec_host == c_.self && c_.runner.ControlJob(r.id, wire::ShepherdAction::kTerminate, notice);
  if (auto link = c_.link_to(r.exec_host); !sent && link)
    sent = link->SendCancel(wire::CancelJob{r.id});
  if (!sent) return Fail("job " + label + " runs on " + r.exec_host + ", which cannot be reached now");
  // One that stops at a checkpoint meanwhile comes back here to go on: it is cancelled then.
  if (Status noted = c_.ledger.NoteCancelRequested(r.id); !noted.ok())
    return Fail("job " + label + " was told to stop on " + r.exec_host + ", but " + noted.message());
  return "cancelling job " + label + " on " + r.exec_host;
}

Result<spool::JobRecord> JobRequests::CallersJob(const Caller& who, uint64_t number, const std::string& label) {
  auto record = c_.ledger.Get(number);
  if (!record.ok()) return Fail("spool: " + record.message());
  if (!record->has_value() || !(*record)->origin_host.empty() || (who.uid != 0 && (*record)->uid != who.uid))
    return Fail("you have no job " + label + " (it would have been submitted on " + c_.self + ")");
  return std::move(**record);
}

Result<std::string> JobRequests::Migrate(const Caller& who, uint64_t number, const std::string& id_text,
                                        const std::string& host) {
  auto record = CallersJob(who, number, id_text);
  if (!record.ok()) return record.error();
  const spool::JobRecord& r = *record;
  if (r.state != spool::JobState::kRunning) return Fail("job " + id_text + " is not running");
  std::string target;
  if (!host.empty()) {
    auto resolved = c_.resolve_host(host);
    if (!resolved.ok()) return resolved.error();
    target = *resolved;
    if (target == r.exec_host) return Fail("job " + id_text + " already runs on " + target);
  }
  if (!c_.others_take_restarts(r.queue) && target.empty())
    return Fail("no other host takes restarted jobs in queue \"" + r.queue + "\" now (restartmode, load)");
  const std::string reason = "[job " + id_text + " is moving at its owner's request]";
  bool asked = false;
  if (r.exec_host == c_.self) {
    asked = c_.runner.Checkpoint(r.id, reason);
  } else if (auto link = c_.link_to(r.exec_host)) {
    asked = link->SendMigrate(wire::MigrateJob{number, reason});
  }
  if (!asked)
    return Fail("job " + id_text + " cannot be checkpointed on " + r.exec_host +
                " (its queue needs checkpointmode 2 there, or 1 with a working CRIU; the host must be reachable; "
                "its log says more)");
  if (!target.empty()) c_.move_to(r.id, target);
  return "asked job " + id_text + " on " + r.exec_host + " to checkpoint; it will go on " +
         (target.empty() ? "on another host" : "on " + target);
}

Result<wire::OutputReply> JobRequests::OutputOf(const Caller& who, uint64_t number, const std::string& id_text) {
  auto record = CallersJob(who, number, id_text);
  if (!record.ok()) return record.error();
  const spool::JobRecord& r = *record;
  if (!r.batch) return Fail("job " + id_text + " is interactive: its output went to its terminal");
  if (r.output_path.empty()) return wire::OutputReply{"", true, "job " + id_text + " discards its output (QMAIL=FALSE)"};
  switch (r.state) {
    case spool::JobState::kWaiting:
      return wire::OutputReply{"", false, "job " + id_text + " has not started yet"};
    case spool::JobState::kRunning:
      return wire::OutputReply{"", false, "job " + id_text + " is running on " + r.exec_host +
                                              "; its output will be in " + r.output_path + " when it ends"};
    case spool::JobState::kCancelled:
      return wire::OutputReply{"", true, "job " + id_text + " was cancelled before it ran"};
    default:
      if (!r.end_reported) return wire::OutputReply{"", false, "job " + id_text + "'s output is on its way"};
      if (!r.output_held.empty()) {
        std::string said = "job " + id_text + "'s output is held in the spool of " + c_.self + ", as " +
                           r.output_path + " cannot be written (" + r.output_held + "); it goes there once it can";
        auto held = c_.finisher.ReadHeldOutput(r.id, wire::OutputReply::kMaxHeldShown);
        if (!held.ok()) return wire::OutputReply{"", true, said + "; " + held.message()};
        return wire::OutputReply{"", true, said, std::move(held.value())};
      }
      return wire::OutputReply{r.output_path, true, ""};
  }
}

}  // namespace queue::daemon
