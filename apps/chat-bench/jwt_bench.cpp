// chat-jwt-bench: what verifying a token costs, the check every socket CONNECT and every
// authenticated REST request pays (auth::JwtCodec::verify, a token as chatd and the Node server
// sign them: HS256, {userId, iat, exp}).
//
//   chat-jwt-bench [--iterations 1000000] [--rounds 3]
//
// Prints each round's mean time per verify, then one line "RESULT {json}".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "args.hpp"
#include "auth/jwt.hpp"

int main(int argc, char** argv) {
  long iterations = 1'000'000, rounds = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    long* target = a == "--iterations" ? &iterations : a == "--rounds" ? &rounds : nullptr;
    if (target == nullptr || i + 1 >= argc || !chat::bench::parse_number(argv[++i], *target) || *target <= 0) {
      std::fprintf(stderr, "usage: chat-jwt-bench [--iterations N] [--rounds N]\n");
      return 2;
    }
  }
  const std::int64_t now = 1'764'780'000;
  const chat::auth::JwtCodec codec("a-secret-of-the-usual-length-32b", 7 * 24 * 3600);
  const std::string token = codec.sign("656d0f2c9b1e8a3f4c2d1e0f", now);
  boost::json::array per_round;
  double best = 0;
  for (long r = 0; r < rounds; ++r) {
    long ok = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < iterations; ++i) ok += codec.verify(token, now + 1).ok() ? 1 : 0;
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
        static_cast<double>(iterations);
    if (ok != iterations) {
      std::fprintf(stderr, "chat-jwt-bench: %ld of %ld verifies failed\n", iterations - ok, iterations);
      return 1;
    }
    std::printf("round %ld: %.3f µs per verify (%ld verifies)\n", r + 1, us, iterations);
    per_round.push_back(us);
    best = r == 0 ? us : std::min(best, us);
  }
  boost::json::object result{{"scenario", "jwt"}, {"iterations", iterations},
                             {"token_bytes", token.size()}, {"us_per_verify", per_round},
                             {"best_us", best}};
  std::printf("RESULT %s\n", boost::json::serialize(result).c_str());
  return 0;
}
