// The chat-worker executable end to end: Kafka + FerretDB (MongoDB wire protocol) started once
// for this process; records produced with KafkaLog end up in the database, poison in the DLQ,
// metrics are served, SIGTERM exits 0 with the offsets committed.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "core/object_id.hpp"
#include "kafka_env.hpp"
#include "store/mongo_store.hpp"
#include "stream/kafka_log.hpp"

namespace {
using namespace chat;
using namespace std::chrono_literals;

test::KafkaBroker* broker = nullptr;
std::string ferret_dir;
std::uint16_t ferret_port = 0;

class Environment : public ::testing::Environment {
 public:
  void SetUp() override {
    broker = new test::KafkaBroker();
    broker->start();
    ferret_dir = (std::filesystem::temp_directory_path() /
                  ("chat-ferret-test-" + std::to_string(::getpid()))).string();
    ferret_port = static_cast<std::uint16_t>(test::start_on_free_port([](int port) {
      std::string cmd = test::scripts_dir() + "/services/ferretdb.sh start --dir " + ferret_dir +
                        " --port " + std::to_string(port) + " --watch-pid " +
                        std::to_string(::getpid());
      return std::system(cmd.c_str()) == 0;
    }));
    if (ferret_port == 0) throw std::runtime_error("ferretdb did not start");
  }
  void TearDown() override {
    (void)std::system((test::scripts_dir() + "/services/ferretdb.sh stop --dir " + ferret_dir).c_str());
    std::error_code ec;
    std::filesystem::remove_all(ferret_dir, ec);
    broker->remove();
    delete broker;
  }
};
[[maybe_unused]] auto* env = ::testing::AddGlobalTestEnvironment(new Environment);

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string http_get(std::uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

double metric(const std::string& text, const std::string& name) {
  auto at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

TEST(ChatWorkerBinary, ConsumesIntoTheDatabaseAndStopsCleanly) {
  const std::string topic = "bin-messages";
  const std::string uri = "mongodb://127.0.0.1:" + std::to_string(ferret_port) + "/workertest";
  stream::KafkaOptions ko;
  ko.brokers = broker->bootstrap();
  ko.topic = topic;
  ko.partitions = 3;
  auto log = stream::make_kafka_log(ko);
  ASSERT_TRUE(log.ok()) << log.err().message;
  std::vector<store::Message> sent;
  std::atomic<int> acked{0};
  for (int i = 0; i < 60; ++i) {
    store::Message m;
    m.id = make_object_id(1700000000 + i, static_cast<std::uint32_t>(i));
    m.sender_id = "65a1b2c3d4e5f60718293a01";
    m.receiver_id = "65a1b2c3d4e5f60718293a02";
    m.conversation_id = store::direct_conversation_id(m.sender_id, m.receiver_id);
    m.text = "hello " + std::to_string(i);
    m.created_at = m.updated_at = (1700000000LL + i) * 1000;
    sent.push_back(m);
    (*log)->append(m, [&](result<void> r) { acked += r.ok(); });
  }
  (*log)->flush(20s);
  ASSERT_EQ(acked.load(), 60);
  ASSERT_TRUE(test::produce_raw(broker->bootstrap(), topic, {{"x", "{broken"}}));

  const std::string out_path = ferret_dir + "/worker.log";
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::setenv("KAFKA_BROKERS", broker->bootstrap().c_str(), 1);
    ::setenv("KAFKA_TOPIC", topic.c_str(), 1);
    ::setenv("MONGODB_URI", uri.c_str(), 1);
    ::setenv("METRICS_PORT", "0", 1);
    ::setenv("KAFKA_PARTITIONS", "3", 1);
    const char* bin = std::getenv("CHAT_WORKER_BIN");
    ::execl(bin, bin, nullptr);
    ::_exit(127);
  }
  ASSERT_GT(pid, 0);
  std::uint16_t port = 0;
  std::regex re("chat-worker metrics on http://127\\.0\\.0\\.1:(\\d+)");
  ASSERT_TRUE(test::wait_for([&] {
    std::smatch m;
    std::string text = slurp(out_path);
    if (!std::regex_search(text, m, re)) return false;
    port = static_cast<std::uint16_t>(std::stoi(m[1]));
    return true;
  }, 20s)) << slurp(out_path);

  ASSERT_TRUE(test::wait_for([&] {
    return metric(http_get(port, "/metrics"), "chat_worker_written_total") == 60;
  }, 40s)) << slurp(out_path);
  std::string metrics = http_get(port, "/metrics");
  EXPECT_EQ(metric(metrics, "chat_worker_dead_letters_total"), 1);
  EXPECT_EQ(metric(metrics, "chat_worker_consumed_total"), 61);
  EXPECT_NE(metrics.find("chat_worker_db_write_duration_seconds_count"), std::string::npos);
  EXPECT_NE(http_get(port, "/healthz").find("200 OK"), std::string::npos);

  auto store = store::MongoStore::open(store::MongoOptions{uri});
  ASSERT_TRUE(store.ok()) << store.err().message;
  auto page = (*store)->conversation_page(sent[0].conversation_id, "", 1000);
  ASSERT_TRUE(page.ok()) << page.err().message;
  ASSERT_EQ(page->messages.size(), 60u);
  for (std::size_t i = 0; i < 60; ++i) {
    EXPECT_EQ(page->messages[i].id, sent[i].id);
    EXPECT_EQ(page->messages[i].text, sent[i].text);
  }
  EXPECT_EQ(test::read_topic(broker->bootstrap(), topic + ".dlq", 1).size(), 1u);

  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_TRUE(test::wait_for([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 20s));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(out_path);
  std::int64_t committed = 0;
  for (auto& [p, o] : test::committed_offsets(broker->bootstrap(), "chat-worker", topic, 3))
    if (o > 0) committed += o;
  EXPECT_EQ(committed, 61);
}

}  // namespace
