#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

TEST(Scaffold, GtestGmockAbsl) {
  EXPECT_EQ(absl::StrCat("nitro", 42), "nitro42");
  EXPECT_EQ(absl::StrFormat("%d-%s", 7, "heap"), "7-heap");
  EXPECT_THAT(std::string("nitroheap"), ::testing::HasSubstr("heap"));
}
