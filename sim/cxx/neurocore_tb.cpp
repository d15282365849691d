// Stand-alone Verilator testbench of the neurocore: runs a whole job file without Python.
//
// It reproduces sim/driver.py's CoreDriver cycle for cycle (write, read_many, clear,
// send_spikes, run_step), so cycle numbers, step lengths and events equal the cocotb
// harness's.  The job and result formats (little-endian uint64 words) are defined in
// sim/jobfile.py; memory indices, addresses and words all come from the job, so nothing here
// depends on the core's memory map.  Ports: cfg.*, ctrl.*, inp.*, out.* (docs/rtl.md §1).
//
// Built with -DNEUROCORE_CHIP against a chip's Verilog (rtl/chip.py, top module renamed
// `neurocore`; sim/chipfast.py), the same driver runs the chip, whose cfg/ctrl/inp/out ports
// carry the core's names, and the COUNTERS op reads its counter outputs (cycles, flits,
// flit_waits).  A single-core build refuses COUNTERS.
//
// Usage: neurocore_tb JOB RESULTS [FST]      exit 0: done, 2: timeout or bad job (stderr).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "Vneurocore.h"
#include "verilated.h"
#if VM_TRACE_FST
#include "verilated_fst_c.h"
#endif

// Port `group.member` is `group__member` in the Verilog; Verilator escapes "__" as "___05F".
#define P(group, member) group##___05F##member

namespace {

// Keep in step with sim/jobfile.py.
constexpr uint64_t MAGIC = 0x3130424f4a43454eULL;  // "NECJOB01"
enum Op : uint64_t { END = 0, CLEAR = 1, WRITE = 2, SEND = 3, STEP = 4, READ = 5, READY = 6,
                     MARK = 7, COUNTERS = 8 };
constexpr uint64_t HALF_PERIOD_PS = 5000;  // 10 ns clock, as CLOCK_NS in sim/check.py

struct Fail {
    std::string what;
};

class Harness {
  public:
    Harness(const char* fst, uint64_t max_cycles) : max_cycles_(max_cycles) {
        ctx_.reset(new VerilatedContext);
        top_.reset(new Vneurocore(ctx_.get(), "neurocore"));
#if VM_TRACE_FST
        if (fst) {
            ctx_->traceEverOn(true);
            trace_.reset(new VerilatedFstC);
            top_->trace(trace_.get(), 99);
            trace_->open(fst);
        }
#else
        if (fst) throw Fail{"FST requested but the model was built without --trace-fst"};
#endif
        // As CocotbBackend + CoreDriver.__init__ and the reset of cocotb_neurocore.regression.
        top_->clk = 0;
        top_->rst = 1;
        top_->P(cfg, valid) = 0; top_->P(cfg, mem) = 0; top_->P(cfg, addr) = 0; top_->P(cfg, write) = 0;
        top_->P(cfg, wdata) = 0; top_->P(ctrl, start) = 0; top_->P(ctrl, clear) = 0;
        top_->P(ctrl, error_clear) = 0; top_->P(inp, valid) = 0; top_->P(inp, payload) = 0;
        top_->P(out, ready) = 1;
        top_->eval();
        tick();
        tick();
        top_->rst = 0;
        tick();
    }
    ~Harness() {
#if VM_TRACE_FST
        if (trace_) { dump(now_ps() + HALF_PERIOD_PS); trace_->close(); }
#endif
        top_->final();
    }

    uint64_t cycle = 0;
    uint64_t start_cycle = 0;
    Vneurocore& p() { return *top_; }

    // One clock: inputs set since the last edge settle, rising edge, falling edge.
    void tick() {
        top_->eval();
        if (cycle) dump(now_ps());
        top_->clk = 1;
        top_->eval();
        dump(cycle * 2 * HALF_PERIOD_PS);
        top_->clk = 0;
        top_->eval();
        ++cycle;
    }

    template <typename Get>
    void wait(const char* port, Get get) {
        for (uint64_t i = 0; i < max_cycles_; ++i) {
            if (get()) return;
            tick();
        }
        throw Fail{std::string(port) + " stayed low for " + std::to_string(max_cycles_) +
                   " cycles"};
    }
    void wait_idle() {
        for (uint64_t i = 0; i < max_cycles_; ++i) {
            if (!top_->P(ctrl, busy)) return;
            tick();
        }
        throw Fail{"core stayed busy for " + std::to_string(max_cycles_) + " cycles"};
    }

    // ---- CoreDriver, operation by operation ----------------------------------------------
    void write(uint64_t mem, uint64_t addr, uint64_t word) {
        wait("cfg.ready", [&] { return top_->P(cfg, ready); });
        top_->P(cfg, valid) = 1; top_->P(cfg, mem) = mem; top_->P(cfg, addr) = addr;
        top_->P(cfg, write) = 1; top_->P(cfg, wdata) = word;
        tick();
        top_->P(cfg, valid) = 0; top_->P(cfg, write) = 0;
    }

    void read_many(uint64_t mem, uint64_t first, uint64_t n, std::vector<uint64_t>& out) {
        wait("cfg.ready", [&] { return top_->P(cfg, ready); });
        top_->P(cfg, mem) = mem; top_->P(cfg, write) = 0;
        for (uint64_t i = 0; i < n; ++i) {
            top_->P(cfg, valid) = 1; top_->P(cfg, addr) = first + i;
            tick();
            if (!top_->P(cfg, rvalid))
                throw Fail{"cfg.rvalid low one cycle after reading memory " + std::to_string(mem) +
                           "[" + std::to_string(first + i) + "]"};
            if (i + 1 < n) out.push_back(top_->P(cfg, rdata));
        }
        top_->P(cfg, valid) = 0;
        if (n) out.push_back(top_->P(cfg, rdata));
    }

    void clear() {
        wait_idle();
        top_->P(ctrl, clear) = 1;
        tick();
        top_->P(ctrl, clear) = 0;
        wait_idle();
    }

    void send_spikes(const uint64_t* ids, uint64_t n) {
        for (uint64_t k = 0; k < n; ++k) {
            top_->P(inp, payload) = ids[k];
            top_->P(inp, valid) = 1;
            wait("inp.ready", [&] { return top_->P(inp, ready); });
            tick();
        }
        top_->P(inp, valid) = 0;
    }

    // run_step without send_during; out.ready from the cyclic pattern (all ones if empty).
    void run_step(std::vector<uint64_t>& rec) {
        wait_idle();
        const uint64_t step = top_->P(ctrl, step);
        top_->P(ctrl, start) = 1;
        start_cycle = cycle;
        uint64_t stalls = 0, c = 0;
        std::vector<uint64_t> events;
        while (true) {
            const bool ready = next_ready();
            top_->P(out, ready) = ready;
            top_->P(inp, valid) = 0;
            if (c > 0) {
                if (top_->P(out, valid)) {
                    if (ready) { events.push_back(top_->P(out, payload)); events.push_back(c); }
                    else ++stalls;
                }
                if (top_->P(ctrl, done)) break;
            }
            tick();
            if (c == 0) top_->P(ctrl, start) = 0;
            ++c;
            if (c > max_cycles_)
                throw Fail{"step " + std::to_string(step) + " did not finish within " +
                           std::to_string(max_cycles_) + " cycles"};
        }
        top_->P(out, ready) = 1;
        tick();
        top_->P(inp, valid) = 0;
        rec.insert(rec.end(), {step, c + 1, start_cycle, stalls, events.size() / 2});
        rec.insert(rec.end(), events.begin(), events.end());
    }

    void set_ready(std::vector<uint64_t> bits, uint64_t n) {
        ready_bits_ = std::move(bits);
        ready_n_ = n;
        ready_pos_ = 0;
    }

  private:
    bool next_ready() {
        if (!ready_n_) return true;
        const uint64_t k = ready_pos_;
        ready_pos_ = (ready_pos_ + 1) % ready_n_;
        return (ready_bits_[k / 64] >> (k % 64)) & 1;
    }
    uint64_t now_ps() const { return cycle ? (2 * cycle - 1) * HALF_PERIOD_PS : 0; }
    void dump(uint64_t t) {
#if VM_TRACE_FST
        if (trace_) trace_->dump(t);
#else
        (void)t;
#endif
    }

    std::unique_ptr<VerilatedContext> ctx_;
    std::unique_ptr<Vneurocore> top_;
#if VM_TRACE_FST
    std::unique_ptr<VerilatedFstC> trace_;
#endif
    uint64_t max_cycles_;
    std::vector<uint64_t> ready_bits_;
    uint64_t ready_n_ = 0, ready_pos_ = 0;
};

std::vector<uint64_t> slurp(const char* path) {
    FILE* f = std::fopen(path, "rb");
    if (!f) throw Fail{std::string("cannot open job ") + path};
    std::vector<uint64_t> words;
    uint64_t buf[4096];
    size_t n;
    while ((n = std::fread(buf, 8, 4096, f)) > 0) words.insert(words.end(), buf, buf + n);
    std::fclose(f);
    return words;
}

uint64_t wall_ns(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s JOB RESULTS [FST]\n", argv[0]);
        return 2;
    }
    FILE* out = std::fopen(argv[2], "wb");
    if (!out) {
        std::fprintf(stderr, "cannot write %s\n", argv[2]);
        return 2;
    }
    std::vector<uint64_t> rec;
    auto emit = [&] {
        std::fwrite(rec.data(), 8, rec.size(), out);
        rec.clear();
    };
    int rc = 0;
    try {
        const std::vector<uint64_t> job = slurp(argv[1]);
        size_t i = 0;
        auto next = [&]() -> uint64_t {
            if (i >= job.size()) throw Fail{"job ends without END"};
            return job[i++];
        };
        if (next() != MAGIC) throw Fail{"not a neurocore job file"};
        const uint64_t max_cycles = next();
        const auto t0 = std::chrono::steady_clock::now();
        Harness h(argc > 3 ? argv[3] : nullptr, max_cycles);
        std::vector<uint64_t> words;
        for (bool running = true; running;) {
            const uint64_t op = next();
            switch (op) {
                case END:
                    rec.insert(rec.end(), {END, h.cycle, wall_ns(t0)});
                    running = false;
                    break;
                case CLEAR: h.clear(); break;
                case WRITE: {
                    const uint64_t mem = next(), n = next();
                    if (i + 2 * n > job.size()) throw Fail{"truncated WRITE"};
                    for (uint64_t k = 0; k < n; ++k, i += 2) h.write(mem, job[i], job[i + 1]);
                    break;
                }
                case SEND: {
                    const uint64_t n = next();
                    if (i + n > job.size()) throw Fail{"truncated SEND"};
                    h.send_spikes(job.data() + i, n);
                    i += n;
                    break;
                }
                case STEP:
                    rec.insert(rec.end(), {STEP, 0, 0});
                    h.run_step(rec);
                    rec[1] = h.cycle;
                    rec[2] = wall_ns(t0);
                    break;
                case READ: {
                    const uint64_t mem = next(), first = next(), n = next();
                    words.clear();
                    h.read_many(mem, first, n, words);
                    rec.insert(rec.end(), {READ, h.cycle, wall_ns(t0), n});
                    rec.insert(rec.end(), words.begin(), words.end());
                    break;
                }
                case READY: {
                    const uint64_t n = next(), nw = (n + 63) / 64;
                    if (i + nw > job.size()) throw Fail{"truncated READY"};
                    h.set_ready(std::vector<uint64_t>(job.begin() + i, job.begin() + i + nw), n);
                    i += nw;
                    break;
                }
                case MARK: rec.insert(rec.end(), {MARK, h.cycle, wall_ns(t0), next()}); break;
                case COUNTERS:
#ifdef NEUROCORE_CHIP
                    rec.insert(rec.end(), {COUNTERS, h.cycle, wall_ns(t0), 3, h.p().cycles,
                                           h.p().flits, h.p().flit_waits});
                    break;
#else
                    throw Fail{"job op COUNTERS needs a chip build (-DNEUROCORE_CHIP)"};
#endif
                default: throw Fail{"unknown job op " + std::to_string(op)};
            }
            if (!rec.empty()) emit();
        }
    } catch (const Fail& e) {
        std::fprintf(stderr, "neurocore_tb: %s\n", e.what.c_str());
        rc = 2;
    }
    std::fclose(out);
    return rc;
}
