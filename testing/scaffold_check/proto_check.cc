#include <string>

#include "gtest/gtest.h"
#include "testing/scaffold_check/sample.pb.h"

TEST(Scaffold, CcProtoRoundTrip) {
  nitro::scaffold::Sample s;
  s.set_name("arena");
  s.mutable_size()->set_bytes(4096);
  std::string wire;
  ASSERT_TRUE(s.SerializeToString(&wire));
  nitro::scaffold::Sample back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.name(), "arena");
  EXPECT_EQ(back.size().bytes(), 4096u);
}
