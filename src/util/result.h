// Result<T> and Status: how errors cross module boundaries.
//
// Errors that a user or an operator may read carry a complete one-line message.
// Modules return these instead of throwing, so that a bad frame or a broken file
// is handled where it is noticed (LevelDB's Status, in our own words).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace queue {

struct Error {
  std::string message;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // REQUIRES: ok()
  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  // REQUIRES: !ok()
  const Error& error() const { return std::get<1>(state_); }
  const std::string& message() const { return error().message; }

 private:
  std::variant<T, Error> state_;
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  static Status Ok() { return Status(); }

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  // REQUIRES: !ok()
  const std::string& message() const { return error_->message; }

 private:
  std::optional<Error> error_;
};

// Builds an Error from a message, for `return Fail("...")`.
inline Error Fail(std::string message) { return Error{std::move(message)}; }

// The text of errno `err`, for messages that name a failed system call.
std::string ErrnoText(int err);

}  // namespace queue
