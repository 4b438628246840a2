// The error vocabulary (rtcmesh/result.hpp) and the ASSERT_OK kit.
#include "base/result.hpp"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <system_error>

#include "testing/result_matchers.hpp"

namespace rtcmesh {
namespace {

TEST(ErrorCode, NamesAreTheW3cExceptionNames) {
  EXPECT_STREQ(to_string(ErrorCode::InvalidStateError), "InvalidStateError");
  EXPECT_STREQ(to_string(ErrorCode::InvalidAccessError), "InvalidAccessError");
  EXPECT_STREQ(to_string(ErrorCode::InvalidModificationError), "InvalidModificationError");
  EXPECT_STREQ(to_string(ErrorCode::SyntaxError), "SyntaxError");
  EXPECT_STREQ(to_string(ErrorCode::OperationError), "OperationError");
  EXPECT_STREQ(to_string(ErrorCode::TypeError), "TypeError");
  EXPECT_STREQ(to_string(ErrorCode::RangeError), "RangeError");
  EXPECT_STREQ(to_string(ErrorCode::NotSupportedError), "NotSupportedError");
  EXPECT_STREQ(to_string(ErrorCode::DataError), "DataError");
  EXPECT_STREQ(to_string(ErrorCode::TimeoutError), "TimeoutError");
  EXPECT_STREQ(to_string(ErrorCode::IoError), "IoError");
}

TEST(ErrorCode, IsAStdErrorCodeOfTheRtcmeshCategory) {
  std::error_code ec = ErrorCode::SyntaxError;  // is_error_code_enum: implicit
  EXPECT_TRUE(ec);
  EXPECT_EQ(&ec.category(), &error_category());
  EXPECT_STREQ(ec.category().name(), "rtcmesh");
  EXPECT_EQ(ec.message(), "SyntaxError");
  EXPECT_EQ(ec, make_error_code(ErrorCode::SyntaxError));
  EXPECT_NE(ec, make_error_code(ErrorCode::TypeError));
  EXPECT_NE(ec, std::make_error_code(std::errc::invalid_argument));  // same value, other category
  EXPECT_EQ(error_category().message(0), "success");
  EXPECT_EQ(make_error(ErrorCode::TimeoutError, "late").error_code(),
            make_error_code(ErrorCode::TimeoutError));
}

TEST(Error, PrintsCodeThenMessage) {
  Error e = make_error(ErrorCode::InvalidStateError, "the channel is closed");
  EXPECT_EQ(e.code, ErrorCode::InvalidStateError);
  EXPECT_EQ(e.message, "the channel is closed");
  EXPECT_EQ(to_string(e), "InvalidStateError: the channel is closed");
  std::ostringstream out;
  out << e;
  EXPECT_EQ(out.str(), "InvalidStateError: the channel is closed");
  EXPECT_EQ(to_string(Error{ErrorCode::TypeError, ""}), "TypeError");
}

TEST(Error, InternalShorthandDefaultsToOperationError) {
  EXPECT_EQ(make_error("disk full").code, ErrorCode::OperationError);
  EXPECT_EQ(make_error("disk full").message, "disk full");
}

TEST(Result, HoldsAValueOrAnError) {
  Result<int> good = 42;
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(static_cast<bool>(good));
  EXPECT_EQ(good.value(), 42);
  EXPECT_EQ(*good, 42);
  Result<int> bad = make_error(ErrorCode::RangeError, "too big");
  EXPECT_FALSE(bad.ok());
  EXPECT_FALSE(static_cast<bool>(bad));
  EXPECT_EQ(bad.error().code, ErrorCode::RangeError);
  EXPECT_EQ(bad.error().message, "too big");
}

TEST(Result, ArrowAndMoveOut) {
  Result<std::string> text = std::string("hello");
  EXPECT_EQ(text->size(), 5u);
  text->append("!");
  EXPECT_EQ(*text, "hello!");
  Result<std::unique_ptr<int>> owned = std::make_unique<int>(7);
  std::unique_ptr<int> taken = std::move(owned).value();
  ASSERT_TRUE(taken);
  EXPECT_EQ(*taken, 7);
}

TEST(Result, VoidIsOkByDefaultAndCarriesAnError) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_TRUE(static_cast<bool>(ok));
  Status failed = make_error(ErrorCode::InvalidAccessError, "no fingerprint");
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::InvalidAccessError);
  // An error passes from one Result type to another unchanged.
  Result<double> forwarded = failed.error();
  EXPECT_EQ(forwarded.error().code, ErrorCode::InvalidAccessError);
  EXPECT_EQ(forwarded.error().message, "no fingerprint");
}

TEST(ResultMatchers, PassOnTheExpectedOutcome) {
  ASSERT_OK(Status());
  EXPECT_OK(Result<int>(1));
  ASSERT_ERROR(Status(make_error(ErrorCode::SyntaxError, "x")), ErrorCode::SyntaxError);
  EXPECT_ERROR(Result<int>(make_error(ErrorCode::TypeError, "x")), ErrorCode::TypeError);
}

TEST(ResultMatchers, FailuresNameTheError) {
  EXPECT_NONFATAL_FAILURE(EXPECT_OK(Status(make_error(ErrorCode::DataError, "bad record 7"))),
                          "DataError: bad record 7");
  EXPECT_NONFATAL_FAILURE(EXPECT_ERROR(Status(), ErrorCode::TypeError),
                          "succeeded; expected TypeError");
  EXPECT_NONFATAL_FAILURE(
      EXPECT_ERROR(Status(make_error(ErrorCode::SyntaxError, "line 2")), ErrorCode::TypeError),
      "failed with SyntaxError: line 2; expected TypeError");
}

}  // namespace
}  // namespace rtcmesh
