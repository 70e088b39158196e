// Fixture for //tools/lint:determinism_selftest: every banned pattern once or more.
// Not compiled. The expected hits are in expected_hits.txt (file:line: pattern).
#include <chrono>
#include <cstdlib>
#include <ctime>

void Clocks() {
  auto a = std::chrono::system_clock::now();
  auto b = std::chrono::steady_clock::now();
  auto c = std::chrono::high_resolution_clock::now();
  auto d = absl::Now();
  auto e = absl::GetCurrentTimeNanos();
  clock_gettime(CLOCK_MONOTONIC, &ts);
  gettimeofday(&tv, nullptr);
  auto f = time(nullptr);
  auto g = std::time(nullptr);
}

void Randomness() {
  absl::BitGen gen;
  absl::InsecureBitGen insecure;
  std::random_device device;
  int x = operand(1) + rand();
  srand(42);
  std::mt19937 engine(1);
  std::uniform_int_distribution<int> dist(0, 9);
  std::shuffle(v.begin(), v.end(), engine);
  std::sample(v.begin(), v.end(), out, 2, engine);
}

void Threads() {
  std::thread t([] {});
  auto fut = std::async([] { return 1; });
  pthread_create(&thread, nullptr, Run, nullptr);
  std::mutex mu;
  absl::Mutex amu;
  std::condition_variable cv;
}

void Environment() {
  const char* home = getenv("HOME");
  gethostname(name, sizeof(name));
  int pid = getpid();
  dirent* entry = readdir(dir);
  for (auto& p : std::filesystem::directory_iterator(".")) {
  }
}

void Containers() {
  absl::flat_hash_map<int, int> a;
  absl::node_hash_set<int> b;
  std::unordered_map<int, int> c;
  std::mutex mu2;  // determinism-ok:
  std::mutex mu3;  // not an opt-out: determinism-ok: without the comment slashes
}
