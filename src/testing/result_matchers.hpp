// gtest checks for Result: ASSERT_OK / EXPECT_OK print the error (code and
// message) on failure; ASSERT_ERROR / EXPECT_ERROR check the code of a failure.
//   ASSERT_OK(pc->set_remote_description(offer));
//   EXPECT_ERROR(channel->send("x"), rtcmesh::ErrorCode::InvalidStateError);
#pragma once

#include <gtest/gtest.h>

#include "rtcmesh/result.hpp"

namespace rtcmesh::testing {

template <class R>
::testing::AssertionResult result_is_ok(const char* text, const R& result) {
  if (result.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << text << " failed: " << result.error();
}

template <class R>
::testing::AssertionResult result_has_error(const char* text, const char*, const R& result,
                                            ErrorCode code) {
  if (result.ok()) {
    return ::testing::AssertionFailure() << text << " succeeded; expected " << to_string(code);
  }
  if (result.error().code != code) {
    return ::testing::AssertionFailure()
           << text << " failed with " << result.error() << "; expected " << to_string(code);
  }
  return ::testing::AssertionSuccess();
}

}  // namespace rtcmesh::testing

#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::rtcmesh::testing::result_is_ok, expr)
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::rtcmesh::testing::result_is_ok, expr)
#define ASSERT_ERROR(expr, code) \
  ASSERT_PRED_FORMAT2(::rtcmesh::testing::result_has_error, expr, code)
#define EXPECT_ERROR(expr, code) \
  EXPECT_PRED_FORMAT2(::rtcmesh::testing::result_has_error, expr, code)
