// One error vocabulary for the whole library: an Error is a code named after the
// W3C / WebIDL exception the browser API would raise in the same case, plus a
// human-readable message; Result<T> is a value or an Error. Every fallible
// public function returns Result and is [[nodiscard]], so a failure is never
// dropped silently. ErrorCode is also a std::error_code enum (category
// "rtcmesh"), for callers that speak <system_error>.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace rtcmesh {

// 0 is reserved for "no error" (std::error_code convention).
enum class ErrorCode {
  // The object is in the wrong state for the call (closed connection or
  // channel, wrong signaling state, no remote description yet).
  InvalidStateError = 1,
  // A description or candidate does not fit what was negotiated.
  InvalidAccessError,
  // A description that the caller modified in a way the API forbids.
  InvalidModificationError,
  // Text that does not parse (SDP, ICE candidate, URL, DCEP message).
  SyntaxError,
  // The operation failed for a reason specific to it (transport, resources).
  OperationError,
  // A bad argument (WebIDL TypeError): unknown enum value, message too big.
  TypeError,
  // An argument out of its allowed range.
  RangeError,
  // A feature this implementation does not support.
  NotSupportedError,
  // Data that parsed but is inconsistent (for example a corrupt log record).
  DataError,
  // A wait that ran out of time.
  TimeoutError,
  // A file or socket operation of the operating system failed.
  IoError,
};

// The W3C name, e.g. "InvalidStateError".
constexpr const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidStateError:
      return "InvalidStateError";
    case ErrorCode::InvalidAccessError:
      return "InvalidAccessError";
    case ErrorCode::InvalidModificationError:
      return "InvalidModificationError";
    case ErrorCode::SyntaxError:
      return "SyntaxError";
    case ErrorCode::OperationError:
      return "OperationError";
    case ErrorCode::TypeError:
      return "TypeError";
    case ErrorCode::RangeError:
      return "RangeError";
    case ErrorCode::NotSupportedError:
      return "NotSupportedError";
    case ErrorCode::DataError:
      return "DataError";
    case ErrorCode::TimeoutError:
      return "TimeoutError";
    case ErrorCode::IoError:
      return "IoError";
  }
  return "UnknownError";
}

namespace detail {
class ErrorCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "rtcmesh"; }
  std::string message(int value) const override {
    if (value == 0) return "success";
    return to_string(static_cast<ErrorCode>(value));
  }
};
}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::ErrorCategory category;
  return category;
}

inline std::error_code make_error_code(ErrorCode code) noexcept {
  return {static_cast<int>(code), error_category()};
}

struct Error {
  ErrorCode code = ErrorCode::OperationError;
  std::string message;  // the detail, without the code's name

  std::error_code error_code() const noexcept { return make_error_code(code); }
};

// "InvalidStateError: the channel is closed".
inline std::string to_string(const Error& error) {
  std::string out = to_string(error.code);
  if (!error.message.empty()) out += ": " + error.message;
  return out;
}

// For logs and gtest; a template so that this header needs only <iosfwd>.
template <class Out, std::enable_if_t<std::is_base_of_v<std::ostream, Out>, int> = 0>
Out& operator<<(Out& out, const Error& error) {
  out << to_string(error);
  return out;
}

inline Error make_error(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // value(), operator* and operator-> require ok(); error() requires !ok().
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  T&& operator*() && { return std::get<0>(std::move(v_)); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }  // requires !ok()

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

}  // namespace rtcmesh

template <>
struct std::is_error_code_enum<rtcmesh::ErrorCode> : std::true_type {};
