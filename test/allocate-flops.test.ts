// allocateForFlops: a FLOPs budget spent where the measured error rises least (NetAdapt's greedy),
// on hand-made sensitivity trials (pure: no model).
import { describe, expect, it } from 'vitest';
import { allocateForFlops, type GroupTrial, type Sensitivity } from '../ml/allocate';

const trial = (group: string, ratio: number, dFlops: number, dError: number): GroupTrial => ({
  group,
  ratio,
  keep: [ratio * 10],
  dError,
  dBytes: 0,
  dFlops,
  dLatencyMs: 0,
  dEnergyJ: 0,
});

const sens = (trials: GroupTrial[]): Sensitivity => ({
  current: { error: 0.1, bytes: 0, flops: 1000, latencyMs: 0, energyJ: 0 },
  trials,
  latencyBatchSize: 32,
  latency: 'none',
});

describe('allocateForFlops', () => {
  // "a" is cheap per FLOP up to half, then costly; "b" costs the same per FLOP throughout
  const trials = [
    trial('a', 0.25, -100, 0.001),
    trial('a', 0.5, -200, 0.002),
    trial('a', 0.75, -300, 0.05),
    trial('b', 0.25, -100, 0.01),
    trial('b', 0.5, -200, 0.02),
    trial('b', 0.75, -300, 0.03),
  ];

  it('takes the cheapest error per FLOP first, and stops once the budget is met', () => {
    const r = allocateForFlops(sens(trials), 200);
    expect(r.plan).toEqual({ a: [5] }); // a at 0.5: 200 FLOPs for 0.002
    expect(r.removedFlops).toBe(200);
    expect(r.reached).toBe(true);
  });

  it('moves to the other group when the next step of the cheap one costs more per FLOP', () => {
    const r = allocateForFlops(sens(trials), 300);
    // a's step from 0.5 to 0.75 costs 0.048 per 100 FLOPs; b's first 100 cost 0.01
    expect(r.plan).toEqual({ a: [5], b: [2.5] });
    expect(r.estimatedDError).toBeCloseTo(0.012, 6);
  });

  it('takes everything and says so when the trials cannot remove enough', () => {
    const r = allocateForFlops(sens(trials), 10_000);
    expect(r.plan).toEqual({ a: [7.5], b: [7.5] });
    expect(r.removedFlops).toBe(600);
    expect(r.reached).toBe(false);
  });

  it('removes nothing for a budget of 0', () => {
    expect(allocateForFlops(sens(trials), 0)).toEqual({ plan: {}, removedFlops: 0, estimatedDError: 0, reached: true });
  });
});
