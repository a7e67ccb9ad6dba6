#include "config/config.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

namespace chat::config {
namespace {

using Env = std::map<std::string, std::string>;

/// A .env file in the test temp dir, removed when the test ends.
class TempEnvFile {
 public:
  explicit TempEnvFile(const std::string& text) {
    static std::atomic<int> counter{0};
    path_ = ::testing::TempDir() + "chatd_config_test_" + std::to_string(::getpid()) + "_" +
            std::to_string(counter++) + ".env";
    std::ofstream(path_) << text;
  }
  ~TempEnvFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// Runs load() as `chatd <args...>` with `env` and a .env file holding `dotenv` (always passed
/// with --env-file, so a stray ./.env in the working directory never leaks into a test).
result<Loaded> run(std::vector<std::string> args, const Env& env = {},
                   const std::string& dotenv = "") {
  TempEnvFile file(dotenv);
  std::vector<std::string> all{"chatd", "--env-file", file.path()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& a : all) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return load(static_cast<int>(all.size()), argv.data(), env);
}

/// Asserts `r` failed with invalid_argument and its message contains every one of `parts`.
void expect_error_naming(const result<Loaded>& r, std::vector<std::string> parts) {
  ASSERT_FALSE(r.ok()) << "expected an error mentioning " << parts.front();
  EXPECT_EQ(r.code(), errc::invalid_argument);
  for (const auto& p : parts)
    EXPECT_NE(r.err().message.find(p), std::string::npos)
        << "message '" << r.err().message << "' does not mention '" << p << "'";
}

TEST(Config, Defaults) {
  auto r = run({});
  ASSERT_TRUE(r.ok()) << r.err().message;
  const Config& c = r->config;
  EXPECT_FALSE(r->help);
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.port, 5000);
  EXPECT_EQ(c.node_env, "development");
  EXPECT_FALSE(c.production());
  EXPECT_EQ(c.data_dir, "./data");
  EXPECT_EQ(c.jwt_secret, "");
  EXPECT_EQ(c.jwt_expiration, "7d");
  EXPECT_EQ(c.jwt_ttl_seconds, 7 * 86400);
  EXPECT_EQ(c.cors_origins, std::vector<std::string>{"http://localhost:5173"});
  EXPECT_EQ(c.api_limit.max, 100u);
  EXPECT_EQ(c.api_limit.window_ms, 30'000);
  EXPECT_EQ(c.auth_limit.max, 10u);
  EXPECT_EQ(c.auth_limit.window_ms, 15 * 60'000);
  EXPECT_FALSE(c.trust_proxy);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.max_text, 4000u);
  // "0 = automatic" thread counts are resolved by load().
  EXPECT_GE(c.threads, 1u);
  EXPECT_GE(c.blocking_threads, 4u);
  EXPECT_TRUE(r->notes.empty());
}

TEST(Config, FlagsBeatEnvBeatDotenvBeatDefaults) {
  const std::string dotenv = "SERVER_PORT=5001\nHOST=10.0.0.1\nLOG_LEVEL=debug\n";
  const Env env{{"SERVER_PORT", "5002"}, {"HOST", "10.0.0.2"}};

  auto all = run({"--port", "5003"}, env, dotenv);
  ASSERT_TRUE(all.ok()) << all.err().message;
  EXPECT_EQ(all->config.port, 5003);          // flag
  EXPECT_EQ(all->config.host, "10.0.0.2");    // env over .env
  EXPECT_EQ(all->config.log_level, "debug");  // .env over default

  auto no_flag = run({}, env, dotenv);
  ASSERT_TRUE(no_flag.ok()) << no_flag.err().message;
  EXPECT_EQ(no_flag->config.port, 5002);

  auto only_file = run({}, {}, dotenv);
  ASSERT_TRUE(only_file.ok()) << only_file.err().message;
  EXPECT_EQ(only_file->config.port, 5001);
  EXPECT_EQ(only_file->config.host, "10.0.0.1");

  auto none = run({});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->config.port, 5000);
}

TEST(Config, FlagWithEqualsAndSeparateValue) {
  auto eq = run({"--port=5001"});
  ASSERT_TRUE(eq.ok()) << eq.err().message;
  EXPECT_EQ(eq->config.port, 5001);

  auto sep = run({"--port", "5001"});
  ASSERT_TRUE(sep.ok()) << sep.err().message;
  EXPECT_EQ(sep->config.port, 5001);

  // A value may itself contain '=' (only the first one splits).
  auto secret = run({"--jwt-secret=a=b=c"});
  ASSERT_TRUE(secret.ok()) << secret.err().message;
  EXPECT_EQ(secret->config.jwt_secret, "a=b=c");

  auto zero = run({"--port=0"});
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->config.port, 0);
}

TEST(Config, LaterFlagWins) {
  auto r = run({"--port", "5001", "--port=5002"});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->config.port, 5002);
}

TEST(Config, OldNodeVariableNames) {
  auto r = run({}, {{"SERVER_PORT", "8080"},
                    {"NODE_ENV", "production"},
                    {"JWT_SECRET", std::string(40, 's')},
                    {"JWT_EXPIRATION", "12h"}});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->config.port, 8080);
  EXPECT_EQ(r->config.node_env, "production");
  EXPECT_TRUE(r->config.production());
  EXPECT_EQ(r->config.jwt_secret, std::string(40, 's'));
  EXPECT_EQ(r->config.jwt_expiration, "12h");
  EXPECT_EQ(r->config.jwt_ttl_seconds, 12 * 3600);
}

TEST(Config, JwtExpirationForms) {
  struct Case {
    const char* value;
    std::int64_t seconds;
  };
  for (auto [value, seconds] : {Case{"7d", 604800}, Case{"1h", 3600}, Case{"3600", 3600},
                                Case{"30m", 1800}, Case{"2 days", 172800}}) {
    auto r = run({"--jwt-expiration", value});
    ASSERT_TRUE(r.ok()) << value << ": " << r.err().message;
    EXPECT_EQ(r->config.jwt_ttl_seconds, seconds) << value;
    EXPECT_EQ(r->config.jwt_expiration, value);
  }
}

TEST(Config, InvalidPortNamesTheSetting) {
  expect_error_naming(run({"--port", "abc"}), {"--port", "SERVER_PORT", "'abc'"});
  expect_error_naming(run({"--port", "65536"}), {"--port", "65536"});
  expect_error_naming(run({"--port", "-1"}), {"--port"});
  expect_error_naming(run({"--port", "50 00"}), {"--port"});
  // The same message when the bad value comes from the environment or the .env file.
  expect_error_naming(run({}, {{"SERVER_PORT", "abc"}}), {"SERVER_PORT", "'abc'"});
  expect_error_naming(run({}, {}, "SERVER_PORT=http\n"), {"SERVER_PORT", "'http'"});
}

TEST(Config, InvalidValuesOfOtherSettings) {
  expect_error_naming(run({"--jwt-expiration", "7x"}), {"jwt-expiration", "JWT_EXPIRATION", "7x"});
  expect_error_naming(run({"--jwt-expiration", "0"}), {"jwt-expiration"});
  expect_error_naming(run({"--rate-limit-api", "5"}), {"rate-limit-api", "RATE_LIMIT_API", "'5'"});
  expect_error_naming(run({"--rate-limit-auth", "5/"}), {"rate-limit-auth"});
  expect_error_naming(run({"--rate-limit-auth", "x/30s"}), {"rate-limit-auth"});
  expect_error_naming(run({"--rate-limit-api", "0/30s"}), {"rate-limit-api"});
  expect_error_naming(run({"--rate-limit-api", "10/forever"}), {"rate-limit-api"});
  expect_error_naming(run({}, {{"NODE_ENV", "staging"}}), {"NODE_ENV", "staging"});
  expect_error_naming(run({"--trust-proxy", "maybe"}), {"trust-proxy", "TRUST_PROXY"});
  expect_error_naming(run({"--log-level", "loud"}), {"log-level", "LOG_LEVEL"});
  expect_error_naming(run({"--read-timeout", "soon"}), {"read-timeout", "READ_TIMEOUT"});
  expect_error_naming(run({"--host", ""}), {"host", "HOST"});
  expect_error_naming(run({"--json-limit", "10"}), {"json-limit", "JSON_BODY_LIMIT"});
}

TEST(Config, ProductionRequiresJwtSecret) {
  expect_error_naming(run({}, {{"NODE_ENV", "production"}}), {"JWT_SECRET"});
  expect_error_naming(run({"--env", "production"}), {"JWT_SECRET"});
  // Other environments generate one.
  auto dev = run({}, {{"NODE_ENV", "test"}});
  ASSERT_TRUE(dev.ok()) << dev.err().message;
  EXPECT_EQ(dev->config.node_env, "test");
  EXPECT_EQ(dev->config.jwt_secret, "");
}

TEST(Config, ShortProductionSecretIsANote) {
  auto r = run({"--env", "production", "--jwt-secret", "short"});
  ASSERT_TRUE(r.ok()) << r.err().message;
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_NE(r->notes[0].find("JWT_SECRET"), std::string::npos);
}

TEST(Config, SaltRoundsAcceptedButNoted) {
  auto r = run({}, {{"SALT_ROUNDS", "12"}});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->config.salt_rounds, 12);
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_NE(r->notes[0].find("SALT_ROUNDS"), std::string::npos);
}

TEST(Config, RateLimitParsing) {
  auto r = run({"--rate-limit-api", "100/30s", "--rate-limit-auth", "5/15m"});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->config.api_limit.max, 100u);
  EXPECT_EQ(r->config.api_limit.window_ms, 30'000);
  EXPECT_TRUE(r->config.api_limit.enabled());
  EXPECT_EQ(r->config.auth_limit.max, 5u);
  EXPECT_EQ(r->config.auth_limit.window_ms, 15 * 60'000);

  auto hour = run({"--rate-limit-api=1000/1h"});
  ASSERT_TRUE(hour.ok()) << hour.err().message;
  EXPECT_EQ(hour->config.api_limit.max, 1000u);
  EXPECT_EQ(hour->config.api_limit.window_ms, 3'600'000);

  auto off = run({}, {{"RATE_LIMIT_API", "off"}, {"RATE_LIMIT_AUTH", "0"}});
  ASSERT_TRUE(off.ok()) << off.err().message;
  EXPECT_FALSE(off->config.api_limit.enabled());
  EXPECT_FALSE(off->config.auth_limit.enabled());
}

TEST(Config, ThreadSliceForms) {
  auto defaults = run({});
  ASSERT_TRUE(defaults.ok()) << defaults.err().message;
  EXPECT_EQ(defaults->config.thread_slice_us, 100);
  struct Case {
    const char* value;
    std::int64_t us;
  };
  for (auto [value, us] : {Case{"100us", 100}, Case{"250us", 250}, Case{"1ms", 1000},
                           Case{"100ms", 100'000}, Case{"0", 0}, Case{"off", 0}}) {
    auto r = run({"--thread-slice", value});
    ASSERT_TRUE(r.ok()) << value << ": " << r.err().message;
    EXPECT_EQ(r->config.thread_slice_us, us) << value;
  }
  // The kernel's range is 0.1-100 ms: outside it (or without a unit) the setting is refused.
  for (const char* bad : {"50us", "101ms", "1s", "100", "us", "-1ms", "1.5ms"})
    expect_error_naming(run({"--thread-slice", bad}), {"thread-slice", "CHATD_THREAD_SLICE", bad});
}

TEST(Config, CorsOriginList) {
  auto r = run({"--cors-origins", "http://a.example, https://b.example:8443 ,,"});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->config.cors_origins,
            (std::vector<std::string>{"http://a.example", "https://b.example:8443"}));

  auto star = run({}, {{"CORS_ORIGINS", "*"}});
  ASSERT_TRUE(star.ok()) << star.err().message;
  EXPECT_EQ(star->config.cors_origins, std::vector<std::string>{"*"});

  // An explicit empty list means "no cross-origin access", not the default.
  auto empty = run({"--cors-origins="});
  ASSERT_TRUE(empty.ok()) << empty.err().message;
  EXPECT_TRUE(empty->config.cors_origins.empty());

  expect_error_naming(run({"--cors-origins", "http://ok.example,ftp://bad.example"}),
                      {"cors-origins", "CORS_ORIGINS"});
  expect_error_naming(run({"--cors-origins", "localhost:5173"}), {"cors-origins"});
}

TEST(Config, UnknownFlagAndStrayArguments) {
  expect_error_naming(run({"--prot", "5000"}), {"--prot"});
  expect_error_naming(run({"--port"}), {"--port"});  // missing value
  expect_error_naming(run({"5000"}), {"5000"});      // positional
  expect_error_naming(run({"-p", "5000"}), {"-p"});
}

TEST(Config, Help) {
  for (const char* flag : {"--help", "-h"}) {
    auto r = run({flag});
    ASSERT_TRUE(r.ok()) << flag;
    EXPECT_TRUE(r->help) << flag;
  }
  // --help wins over invalid values that would otherwise be an error.
  auto r = run({"--port", "abc", "--help"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->help);
}

TEST(Config, EnvFileSelection) {
  TempEnvFile file("SERVER_PORT=6001\n");
  // ENV_FILE picks the file when --env-file is absent.
  const char* argv[] = {"chatd", nullptr};
  auto by_env = load(1, argv, {{"ENV_FILE", file.path()}});
  ASSERT_TRUE(by_env.ok()) << by_env.err().message;
  EXPECT_EQ(by_env->config.port, 6001);

  // --env-file=PATH form.
  std::string flag = "--env-file=" + file.path();
  const char* argv2[] = {"chatd", flag.c_str(), nullptr};
  auto by_flag = load(2, argv2, {});
  ASSERT_TRUE(by_flag.ok()) << by_flag.err().message;
  EXPECT_EQ(by_flag->config.port, 6001);

  // A file asked for explicitly must exist.
  const char* argv3[] = {"chatd", "--env-file", "/nonexistent/dir/.env", nullptr};
  auto missing = load(3, argv3, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.err().message.find("/nonexistent/dir/.env"), std::string::npos);
}

TEST(Config, DotenvFileUsesVariableNamesNotFlags) {
  // A flag name in the .env file is not a variable: it is ignored, the default stays.
  auto r = run({}, {}, "port=6000\n# SERVER_PORT=6001\nexport JWT_EXPIRATION=\"1h\"\n");
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->config.port, 5000);
  EXPECT_EQ(r->config.jwt_ttl_seconds, 3600);
}

TEST(ParseDotenv, Syntax) {
  const std::string text =
      "# a comment\n"
      "\n"
      "   \n"
      "PLAIN=value\n"
      "SPACED =  spaced value  \n"
      "export EXPORTED=yes\n"
      "DOUBLE=\"quoted # not a comment\"\n"
      "SINGLE='single quoted'\n"
      "INLINE=abc # trailing comment\n"
      "HASH=abc#def\n"
      "EMPTY=\n"
      "EQUALS=a=b\n"
      "CRLF=windows\r\n"
      "no equals sign here\n"
      "=no key\n"
      "  # indented comment\n";
  auto m = parse_dotenv(text);
  const std::map<std::string, std::string> expected{
      {"PLAIN", "value"},
      {"SPACED", "spaced value"},
      {"EXPORTED", "yes"},
      {"DOUBLE", "quoted # not a comment"},
      {"SINGLE", "single quoted"},
      {"INLINE", "abc"},
      {"HASH", "abc#def"},
      {"EMPTY", ""},
      {"EQUALS", "a=b"},
      {"CRLF", "windows"},
  };
  EXPECT_EQ(m, expected);
}

TEST(ParseDotenv, LaterLineWinsAndUnbalancedQuotesStay) {
  auto m = parse_dotenv("A=1\nA=2\nB=\"open\nC='x\"\n");
  EXPECT_EQ(m["A"], "2");
  EXPECT_EQ(m["B"], "\"open");
  EXPECT_EQ(m["C"], "'x\"");
}

TEST(ParseDotenv, EmptyInput) {
  EXPECT_TRUE(parse_dotenv("").empty());
  EXPECT_TRUE(parse_dotenv("\n\n# only comments\n").empty());
}

// Every environment variable: listed in --help and actually read by load().
struct EnvCase {
  const char* name;
  const char* value;
  std::function<bool(const Config&)> applied;
};

const std::vector<EnvCase>& env_cases() {
  static const std::vector<EnvCase> cases = {
      {"SERVER_PORT", "5999", [](const Config& c) { return c.port == 5999; }},
      {"HOST", "127.0.0.1", [](const Config& c) { return c.host == "127.0.0.1"; }},
      {"CHATD_THREADS", "3", [](const Config& c) { return c.threads == 3; }},
      {"CHATD_BLOCKING_THREADS", "7", [](const Config& c) { return c.blocking_threads == 7; }},
      {"CHATD_THREAD_SLICE", "300us", [](const Config& c) { return c.thread_slice_us == 300; }},
      {"NODE_ENV", "test", [](const Config& c) { return c.node_env == "test"; }},
      {"DATA_DIR", "/tmp/x", [](const Config& c) { return c.data_dir == "/tmp/x"; }},
      {"JOURNAL_DIR", "/tmp/j", [](const Config& c) { return c.journal_dir == "/tmp/j"; }},
      {"JWT_SECRET", "s3cret", [](const Config& c) { return c.jwt_secret == "s3cret"; }},
      {"JWT_EXPIRATION", "2h", [](const Config& c) { return c.jwt_ttl_seconds == 7200; }},
      {"SALT_ROUNDS", "12", [](const Config& c) { return c.salt_rounds == 12; }},
      {"CORS_ORIGINS", "https://x.example",
       [](const Config& c) {
         return c.cors_origins == std::vector<std::string>{"https://x.example"};
       }},
      {"JSON_BODY_LIMIT", "2048", [](const Config& c) { return c.json_limit == 2048; }},
      {"UPLOAD_LIMIT", "4096", [](const Config& c) { return c.upload_limit == 4096; }},
      {"MAX_TEXT_LENGTH", "10", [](const Config& c) { return c.max_text == 10; }},
      {"RATE_LIMIT_API", "7/1m",
       [](const Config& c) { return c.api_limit.max == 7 && c.api_limit.window_ms == 60'000; }},
      {"RATE_LIMIT_AUTH", "off", [](const Config& c) { return !c.auth_limit.enabled(); }},
      {"TRUST_PROXY", "true", [](const Config& c) { return c.trust_proxy; }},
      {"READ_TIMEOUT", "500ms", [](const Config& c) { return c.read_timeout_ms == 500; }},
      {"IDLE_TIMEOUT", "2m", [](const Config& c) { return c.idle_timeout_ms == 120'000; }},
      {"SHUTDOWN_TIMEOUT", "3s", [](const Config& c) { return c.shutdown_timeout_ms == 3'000; }},
      {"LOG_LEVEL", "warn", [](const Config& c) { return c.log_level == "warn"; }},
      {"WEB_DIR", "/srv/web", [](const Config& c) { return c.web_dir == "/srv/web"; }},
      {"MONGODB_URI", "mongodb://db:27017/chat",
       [](const Config& c) { return c.mongodb_uri == "mongodb://db:27017/chat"; }},
      {"REDIS_URL", "redis://r:6379",
       [](const Config& c) { return c.redis_url == "redis://r:6379"; }},
      {"KAFKA_TOPIC", "msgs", [](const Config& c) { return c.kafka_topic == "msgs"; }},
      {"KAFKA_BROKERS", "k:9092", [](const Config& c) { return c.kafka_brokers == "k:9092"; }},
      {"KAFKA_USERNAME", "u", [](const Config& c) { return c.kafka_username == "u"; }},
      {"KAFKA_PASSWORD", "p", [](const Config& c) { return c.kafka_password == "p"; }},
      {"KAFKA_PARTITIONS", "3", [](const Config& c) { return c.kafka_partitions == 3; }},
      {"KAFKA_DELIVERY_TIMEOUT", "5s",
       [](const Config& c) { return c.kafka_delivery_timeout_ms == 5'000; }},
      {"INSTANCE_ID", "chatd-2", [](const Config& c) { return c.instance_id == "chatd-2"; }},
      {"HEARTBEAT_INTERVAL", "1s", [](const Config& c) { return c.heartbeat_ms == 1'000; }},
      {"PRESENCE_TTL", "30s", [](const Config& c) { return c.presence_ttl_ms == 30'000; }},
  };
  return cases;
}

TEST(Config, EveryVariableIsReadFromTheEnvironmentAndTheDotenvFile) {
  // Redis and Kafka settings are only valid with a MongoDB to share.
  const std::string mongo = "mongodb://db:27017/chat";
  for (const auto& c : env_cases()) {
    std::map<std::string, std::string> env{{c.name, c.value}};
    env.emplace("MONGODB_URI", mongo);
    env.emplace("JWT_SECRET", "a-secret-shared-by-every-instance-of-the-cluster");
    auto from_env = run({}, env);
    ASSERT_TRUE(from_env.ok()) << c.name << ": " << from_env.err().message;
    EXPECT_TRUE(c.applied(from_env->config)) << c.name << " from the environment";

    std::map<std::string, std::string> base{{"MONGODB_URI", mongo},
                                            {"JWT_SECRET", "a-secret-shared-by-every-instance-of-the-cluster"}};
    base.erase(c.name);  // the environment would override the file
    auto from_file = run({}, base, std::string(c.name) + "=" + c.value + "\n");
    ASSERT_TRUE(from_file.ok()) << c.name << ": " << from_file.err().message;
    EXPECT_TRUE(c.applied(from_file->config)) << c.name << " from .env";
  }
}

TEST(Config, ClusterSettingsNeedASharedDatabase) {
  auto redis_only = run({}, {{"REDIS_URL", "redis://r:6379"}});
  ASSERT_FALSE(redis_only.ok());
  EXPECT_NE(redis_only.err().message.find("MONGODB_URI"), std::string::npos);
  auto kafka_only = run({}, {{"KAFKA_BROKERS", "k:9092"}});
  ASSERT_FALSE(kafka_only.ok());

  auto embedded = run({}, {});
  ASSERT_TRUE(embedded.ok());
  EXPECT_FALSE(embedded->config.cluster());
  auto no_secret = run({}, {{"MONGODB_URI", "mongodb://db/chat"}, {"REDIS_URL", "redis://r"}});
  ASSERT_FALSE(no_secret.ok()) << "instances with generated secrets would reject each other's tokens";
  EXPECT_NE(no_secret.err().message.find("JWT_SECRET"), std::string::npos);
  auto cluster = run({}, {{"MONGODB_URI", "mongodb://db/chat"}, {"REDIS_URL", "redis://r"},
                          {"JWT_SECRET", "a-secret-shared-by-every-instance-of-the-cluster"}});
  ASSERT_TRUE(cluster.ok()) << cluster.err().message;
  EXPECT_TRUE(cluster->config.cluster());
}

TEST(Config, PresenceTtlMustOutlastTwoHeartbeats) {
  auto bad = run({}, {{"HEARTBEAT_INTERVAL", "5s"}, {"PRESENCE_TTL", "8s"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().message.find("PRESENCE_TTL"), std::string::npos);
  EXPECT_TRUE(run({}, {{"HEARTBEAT_INTERVAL", "1s"}, {"PRESENCE_TTL", "3s"}}).ok());
}

TEST(HelpText, MentionsEveryVariable) {
  const std::string help = help_text();
  for (const auto& c : env_cases())
    EXPECT_NE(help.find(c.name), std::string::npos) << c.name << " missing from --help";
  for (const char* extra : {"ENV_FILE", "--env-file", "--help", "--port", "--jwt-secret",
                            "--rate-limit-api", "--cors-origins"})
    EXPECT_NE(help.find(extra), std::string::npos) << extra << " missing from --help";
}

}  // namespace
}  // namespace chat::config
