#include "core/options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace nitro {
namespace {

void Collect(const char* message, void* ctx) {
  static_cast<std::vector<std::string>*>(ctx)->push_back(message);
}

TEST(Options, ParsesEveryTypeWithSuffixes) {
  Options o;
  std::vector<std::string> errors;
  bool help = false;
  EXPECT_EQ(ParseOptions("tcache_max_bytes=512K,max_free_committed=1G,decay_ms=250,"
                         "background_thread=0,stats_print=true",
                         &o, &help, Collect, &errors),
            0);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(o.tcache_max_bytes, 512u * 1024);
  EXPECT_EQ(o.max_free_committed, size_t{1} << 30);
  EXPECT_EQ(o.decay_ms, 250u);
  EXPECT_FALSE(o.background_thread);
  EXPECT_TRUE(o.stats_print);
  EXPECT_FALSE(help);
}

TEST(Options, ReportsUnknownKeysAndMalformedValuesAndKeepsTheRest) {
  Options o;
  std::vector<std::string> errors;
  bool help = false;
  int n = ParseOptions("bogus=1,decay_ms=abc,tcache_max_bytes=64M,stats_print=maybe,nokey,"
                       "decay_ms=99999999999,tcache_max_bytes=12X",
                       &o, &help, Collect, &errors);
  EXPECT_EQ(n, 6);
  ASSERT_EQ(errors.size(), 6u);
  EXPECT_NE(errors[0].find("unknown option 'bogus'"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("'decay_ms'"), std::string::npos) << errors[1];
  EXPECT_NE(errors[1].find("'abc'"), std::string::npos) << errors[1];
  EXPECT_NE(errors[2].find("'stats_print'"), std::string::npos) << errors[2];
  EXPECT_NE(errors[3].find("'nokey' is not key=value"), std::string::npos) << errors[3];
  EXPECT_NE(errors[4].find("decay_ms"), std::string::npos) << errors[4];  // out of range
  EXPECT_NE(errors[5].find("12X"), std::string::npos) << errors[5];
  Options defaults;
  EXPECT_EQ(o.decay_ms, defaults.decay_ms);
  EXPECT_EQ(o.tcache_max_bytes, size_t{64} << 20);  // the good item still applied
  EXPECT_FALSE(o.stats_print);
}

TEST(Options, ModeAndQuarantine) {
  Options o;
  std::vector<std::string> errors;
  EXPECT_EQ(QuarantineBytes(o), size_t{64} << 10);  // balanced by default
  EXPECT_EQ(ParseOptions("mode=strict,sample_rate=1", &o, nullptr, Collect, &errors), 0);
  EXPECT_EQ(o.mode, HardeningMode::kStrict);
  EXPECT_EQ(o.sample_rate, 1u);
  EXPECT_EQ(QuarantineBytes(o), size_t{4} << 20);
  EXPECT_EQ(ParseOptions("mode=fast,quarantine=64K", &o, nullptr, Collect, &errors), 0);
  EXPECT_EQ(o.mode, HardeningMode::kFast);
  EXPECT_EQ(QuarantineBytes(o), size_t{64} << 10);
  EXPECT_EQ(ParseOptions("mode=paranoid", &o, nullptr, Collect, &errors), 1);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("'paranoid'; expected fast|balanced|strict"), std::string::npos) << errors[0];
  EXPECT_EQ(o.mode, HardeningMode::kFast);
}

TEST(Options, StringsAndTelemetry) {
  Options o;
  std::vector<std::string> errors;
  EXPECT_EQ(ParseOptions("flight_recorder=/tmp/rec.%p.pb,telemetry=0,profile_rate=64K", &o, nullptr,
                         Collect, &errors),
            0);
  EXPECT_STREQ(o.flight_recorder, "/tmp/rec.%p.pb");
  EXPECT_FALSE(o.telemetry);
  EXPECT_EQ(o.profile_rate, 64u * 1024);
  std::string long_path = "heap_profile=/" + std::string(300, 'x');
  EXPECT_EQ(ParseOptions(long_path.c_str(), &o, nullptr, Collect, &errors), 1);
  EXPECT_EQ(o.heap_profile[0], '\0');
}

TEST(Options, HelpAndEmptyItems) {
  Options o;
  bool help = false;
  EXPECT_EQ(ParseOptions(",help,,", &o, &help, nullptr, nullptr), 0);
  EXPECT_TRUE(help);
  EXPECT_EQ(ParseOptions(nullptr, &o, &help, nullptr, nullptr), 0);
}

TEST(Options, OverflowingSizesAreRejected) {
  Options o;
  EXPECT_EQ(ParseOptions("max_free_committed=99999999999999999999", &o, nullptr, nullptr, nullptr), 1);
  EXPECT_EQ(ParseOptions("max_free_committed=17179869184G", &o, nullptr, nullptr, nullptr), 1);
}

TEST(Options, OutputModeIsOctalPermissionBits) {
  Options o;
  EXPECT_EQ(o.output_mode, 0600u);
  EXPECT_EQ(ParseOptions("output_mode=0640", &o, nullptr, nullptr, nullptr), 0);
  EXPECT_EQ(o.output_mode, 0640u);
  EXPECT_EQ(ParseOptions("output_mode=600", &o, nullptr, nullptr, nullptr), 0);
  EXPECT_EQ(o.output_mode, 0600u);
  EXPECT_EQ(ParseOptions("output_mode=0", &o, nullptr, nullptr, nullptr), 0);
  EXPECT_EQ(o.output_mode, 0u);
  std::string messages;
  auto sink = [](const char* m, void* ctx) { *static_cast<std::string*>(ctx) += std::string(m) + "\n"; };
  for (const char* bad : {"output_mode=0800", "output_mode=01000", "output_mode=4755", "output_mode=",
                          "output_mode=rw", "output_mode=-1", "output_mode=0x180"}) {
    Options p;
    EXPECT_EQ(ParseOptions(bad, &p, nullptr, sink, &messages), 1) << bad;
    EXPECT_EQ(p.output_mode, 0600u) << bad;  // a refused value changes nothing
  }
  EXPECT_NE(messages.find("permission bits in octal, 0 to 0777"), std::string::npos) << messages;
}

TEST(Options, TableIsCompleteAndDocumented) {
  int n = 0;
  for (const OptionSpec* s = OptionTable(); s->name; s++, n++) {
    EXPECT_NE(s->doc, nullptr);
    EXPECT_GT(strlen(s->doc), 10u) << s->name;
    EXPECT_LE(s->min, s->max) << s->name;
  }
  EXPECT_EQ(n, 19);
}

}  // namespace
}  // namespace nitro
