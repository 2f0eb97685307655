// A job's name in the whole cluster. Each daemon numbers the jobs submitted to
// it from 1, so a number alone repeats across hosts; with the submit host's own
// number (its line in the hosts file, from 1) it does not: job 17 of the second
// host is "17.2". Commands take either form; a bare "17" means the job the
// asked host numbered 17, as in a one-host cluster.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"
#include "wire/codec.h"

namespace queue::wire {

struct JobId {
  uint64_t number = 0;  // as its submit host numbered it, from 1
  uint32_t host = 0;    // its submit host's line in the hosts file, from 1; 0: the host asked
  bool operator==(const JobId&) const = default;

  void Encode(Writer& w) const {
    w.u64(number);
    w.u32(host);
  }
  static JobId Decode(Reader& r) {
    JobId id;
    id.number = r.u64();
    id.host = r.u32();
    return id;
  }
};

// No element of a job array: the whole job (or array).
inline constexpr uint32_t kNoElement = 0xffffffff;

// A job, or one element of a job array: "17.2_5" is the element of index 5
// of the array whose id is 17.2 (Slurm's ARRAYID_INDEX).
struct JobRef {
  JobId job;
  uint32_t element = kNoElement;
};

// "17.2", or "17" when the host is 0 (not known).
std::string FormatJobId(uint64_t number, uint32_t host);
inline std::string FormatJobId(const JobId& id) { return FormatJobId(id.number, id.host); }

// Reads "17" or "17.2"; refuses anything else (signs, blanks, zero, overflow)
// with a message for the user.
Result<JobId> ParseJobId(std::string_view text);
// "17.2_5", "17_5", or a job id as ParseJobId reads it.
Result<JobRef> ParseJobRef(std::string_view text);
// "17.2_5": the element of index `index` of the array `array`.
std::string FormatElement(const JobId& array, uint32_t index);

}  // namespace queue::wire
