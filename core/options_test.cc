#include "core/options.h"

#include <errno.h>
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

// Guarded sampling by mode: fast samples nothing unless told to.
TEST(Options, SampleRateByMode) {
  std::vector<std::string> errors;
  const struct {
    const char* spec;
    uint64_t rate;
  } cases[] = {{"", 100000},
               {"mode=balanced", 100000},
               {"mode=strict", 10000},
               {"mode=fast", 0},
               {"mode=fast,sample_rate=10000", 10000},
               {"sample_rate=7,mode=fast", 7},
               {"mode=strict,sample_rate=0", 0}};
  for (const auto& c : cases) {
    Options o;
    EXPECT_EQ(ParseOptions(c.spec, &o, nullptr, Collect, &errors), 0) << c.spec;
    ResolveModeDefaults(&o);
    EXPECT_EQ(o.sample_rate, c.rate) << c.spec;
  }
  EXPECT_TRUE(errors.empty());
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

TEST(Options, MessagesSayTheRangeAndTellOutOfRangeFromMalformed) {
  Options o;
  std::vector<std::string> errors;
  EXPECT_EQ(ParseOptions("sample_rate=2000000000000,sample_rate=ten,decay_ms=99999999999999999999,"
                         "max_free_committed=2T,tcache_max_bytes=lots,flight_recorder_events=3",
                         &o, nullptr, Collect, &errors),
            6);
  ASSERT_EQ(errors.size(), 6u);
  EXPECT_EQ(errors[0],
            "NITROHEAP_OPTIONS: option 'sample_rate' value '2000000000000' is out of range; expected a whole "
            "number from 0 to 1099511627776");
  EXPECT_EQ(errors[1],
            "NITROHEAP_OPTIONS: option 'sample_rate' has a malformed value 'ten'; expected a whole number "
            "from 0 to 1099511627776");
  // Past 2^64: still "out of range", not "malformed".
  EXPECT_NE(errors[2].find("'decay_ms' value '99999999999999999999' is out of range; expected a whole number "
                           "from 0 to 3600000"),
            std::string::npos)
      << errors[2];
  EXPECT_EQ(errors[3],
            "NITROHEAP_OPTIONS: option 'max_free_committed' value '2T' is out of range; expected a size from 0 "
            "to 1T (bytes, or with a K, M, G or T suffix such as 64M)");
  EXPECT_NE(errors[4].find("'tcache_max_bytes' has a malformed value 'lots'; expected a size from 0 to 1G"),
            std::string::npos)
      << errors[4];
  EXPECT_NE(errors[5].find("'flight_recorder_events' value '3' is out of range; expected a whole number from "
                           "16 to 1048576"),
            std::string::npos)
      << errors[5];
  Options defaults;
  EXPECT_EQ(o.sample_rate, defaults.sample_rate);
  EXPECT_EQ(o.max_free_committed, defaults.max_free_committed);
  EXPECT_EQ(ParseOptions("max_free_committed=1T", &o, nullptr, Collect, &errors), 0);
  EXPECT_EQ(o.max_free_committed, size_t{1} << 40);
}

TEST(Options, BlanksAroundItemsKeysAndValuesAreIgnored) {
  Options o;
  std::vector<std::string> errors;
  EXPECT_EQ(ParseOptions("decay_ms=1, sample_rate=5 ,\tmode = strict , stats_print= true,  ", &o, nullptr,
                         Collect, &errors),
            0)
      << (errors.empty() ? "" : errors[0]);
  EXPECT_EQ(o.decay_ms, 1u);
  EXPECT_EQ(o.sample_rate, 5u);
  EXPECT_EQ(o.mode, HardeningMode::kStrict);
  EXPECT_TRUE(o.stats_print);
  // Blanks inside a value are still refused, and the message shows the key
  // without the blanks.
  EXPECT_EQ(ParseOptions(" decay_ms=1 0", &o, nullptr, Collect, &errors), 1);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("option 'decay_ms' has a malformed value '1 0'"), std::string::npos) << errors[0];
  EXPECT_EQ(ParseOptions(" bogus =1", &o, nullptr, Collect, &errors), 1);
  EXPECT_NE(errors[1].find("unknown option 'bogus' ("), std::string::npos) << errors[1];
}

TEST(Options, SignalsByNameOrNumber) {
  std::vector<std::string> errors;
  struct Case {
    const char* text;
    uint64_t want;
  };
  for (Case c : {Case{"SIGUSR1", 10}, Case{"USR2", 12}, Case{"sigusr1", 10}, Case{"12", 12}, Case{"none", 0},
                 Case{"0", 0}, Case{"SIGPROF", 27}, Case{"40", 40}, Case{" SIGHUP ", 1}}) {
    Options o;
    std::string spec = std::string("flight_recorder_signal=") + c.text;
    EXPECT_EQ(ParseOptions(spec.c_str(), &o, nullptr, Collect, &errors), 0) << c.text;
    EXPECT_EQ(o.flight_recorder_signal, c.want) << c.text;
  }
  EXPECT_TRUE(errors.empty());
  for (const char* bad : {"SIGFOO", "USR3", "65", "-1", "SIG", "", "SIGKILL", "9", "STOP"}) {
    Options o;
    o.flight_recorder_signal = 10;
    std::string spec = std::string("flight_recorder_signal=") + bad;
    EXPECT_EQ(ParseOptions(spec.c_str(), &o, nullptr, Collect, &errors), 1) << bad;
    EXPECT_EQ(o.flight_recorder_signal, 10u) << bad;
  }
  ASSERT_EQ(errors.size(), 9u);
  EXPECT_EQ(errors[0],
            "NITROHEAP_OPTIONS: option 'flight_recorder_signal' has an unknown signal 'SIGFOO'; expected a "
            "signal name such as SIGUSR1 or USR1, a number from 1 to 64, or none (0)");
  EXPECT_NE(errors[6].find("cannot use signal 9 (SIGKILL): it cannot be caught"), std::string::npos) << errors[6];
  EXPECT_NE(errors[8].find("cannot use signal 19 (SIGSTOP)"), std::string::npos) << errors[8];
  char name[32];
  EXPECT_STREQ(SignalName(10, name, sizeof(name)), "SIGUSR1");
  EXPECT_STREQ(SignalName(0, name, sizeof(name)), "none");
  EXPECT_STREQ(SignalName(40, name, sizeof(name)), "40");
}

TEST(Options, SetOptionChecksLikeTheParserAndNamesTheSource) {
  Options o;
  std::vector<std::string> errors;
  EXPECT_EQ(SetOption("decay_ms", "250", &o, Collect, &errors, "nitro_ctl"), 0);
  EXPECT_EQ(o.decay_ms, 250u);
  EXPECT_EQ(SetOption("decay_ms", "-3", &o, Collect, &errors, "nitro_ctl"), EINVAL);
  EXPECT_EQ(SetOption("no_such_option", "1", &o, Collect, &errors, "nitro_ctl"), ENOENT);
  EXPECT_EQ(o.decay_ms, 250u);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("nitro_ctl: option 'decay_ms' has a malformed value '-3'", 0), 0u) << errors[0];
  EXPECT_EQ(ParseOptions("decay_ms=x", &o, nullptr, Collect, &errors, "nitroheap_options"), 1);
  EXPECT_EQ(errors[1].rfind("nitroheap_options: ", 0), 0u) << errors[1];
}

TEST(Options, TableIsCompleteAndDocumented) {
  int n = 0;
  for (const OptionSpec* s = OptionTable(); s->name; s++, n++) {
    EXPECT_NE(s->doc, nullptr);
    EXPECT_GT(strlen(s->doc), 10u) << s->name;
    EXPECT_LE(s->min, s->max) << s->name;
  }
  EXPECT_EQ(n, 25);
}

// The movable heap's compaction budgets (docs/movable.md).
TEST(Options, CompactBudgets) {
  Options o;
  EXPECT_EQ(o.compact_budget_us, 20000u);
  std::vector<std::string> errors;
  EXPECT_EQ(ParseOptions("compact_budget_us=500,compact_budget=1M", &o, nullptr, Collect, &errors), 0);
  EXPECT_EQ(o.compact_budget_us, 500u);
  EXPECT_EQ(o.compact_budget, size_t{1} << 20);
  EXPECT_EQ(ParseOptions("compact_budget_us=0", &o, nullptr, Collect, &errors), 0);
  EXPECT_EQ(o.compact_budget_us, 0u);  // no time bound
}

TEST(Options, LargeProtectBudgetHasDefaultsAndBounds) {
  Options o;
  EXPECT_EQ(o.large_protect_burst, 16u);
  EXPECT_EQ(o.large_protect_per_sec, 1u);
  std::vector<std::string> errors;
  EXPECT_EQ(ParseOptions("large_protect_burst=8,large_protect_per_sec=0", &o, nullptr, Collect,
                         &errors),
            0);
  EXPECT_EQ(o.large_protect_burst, 8u);
  EXPECT_EQ(o.large_protect_per_sec, 0u);
  EXPECT_EQ(ParseOptions("large_protect_per_sec=2000000", &o, nullptr, Collect, &errors), 1);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("'large_protect_per_sec' value '2000000' is out of range"),
            std::string::npos)
      << errors[0];
  EXPECT_EQ(o.large_protect_per_sec, 0u);
}

}  // namespace
}  // namespace nitro
