// The campaign file's `task` and `dataset` fields at submit (issue 11 §3-§5): multi-output models and
// outputs that do not fit the task are refused before anything starts, naming the output and the
// fix; image folders take their size from the model's input.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCampaignFile } from '../campaign/load';

const CASES = path.join(__dirname, 'fixtures', 'cases');

function campaign(body: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-task-'));
  const file = path.join(dir, 'campaign.yaml');
  fs.writeFileSync(file, `name: t\nseed: 42\nweights:\n  - { accuracy: 0.6, size: 0.2, latency: 0.2 }\n${body}`);
  return file;
}

const fashion = 'dataset: { name: fashion-mnist, trainLimit: 200, testLimit: 100 }';

describe('task and model outputs at submit', () => {
  it('case 06: a model with two outputs is refused at submit naming both outputs and the fix', () => {
    const file = campaign(`model: ${CASES}/06/model/model.json\n${fashion}\n`);
    expect(() => loadCampaignFile(file)).toThrow(
      /campaign\.yaml: model: 2 outputs \("main", "aux"\): .*keras\.Model\(model\.input, model\.get_layer\("main"\)\.output\)/,
    );
  });

  it('case 05: a logits classifier is accepted (trained on logits); task.outputs that contradicts the graph is refused', () => {
    expect(loadCampaignFile(campaign(`model: ${CASES}/05/model/model.json\n${fashion}\n`)).spec.task).toBeUndefined();
    expect(() => loadCampaignFile(campaign(`model: ${CASES}/05/model/model.json\n${fashion}\ntask: { outputs: probabilities }\n`))).toThrow(
      /model: output "logits" is linear \(no softmax\), so it outputs logits, not probabilities: remove task\.outputs/,
    );
    expect(() => loadCampaignFile(campaign(`model: ${CASES}/05/control-softmax/model.json\n${fashion}\ntask: regression\n`))).toThrow(
      /model: output "logits" ends in a softmax, which cannot fit regression targets/,
    );
    expect(() => loadCampaignFile(campaign(`model: mlp\n${fashion}\ntask: segmentation\n`))).toThrow(/task: must be classification, regression, multilabel/);
  });

  it('regression and multilabel need float targets (npy); class-label datasets are refused naming the fix', () => {
    expect(() => loadCampaignFile(campaign(`model: ${CASES}/05/model/model.json\n${fashion}\ntask: regression\n`))).toThrow(
      /task: regression needs float targets: dataset "fashion-mnist" .* use dataset npy/,
    );
    expect(() => loadCampaignFile(campaign(`model: mlp\n${fashion}\ntask: multilabel\n`))).toThrow(
      /task: multilabel needs your own model: zoo models are classifiers/,
    );
  });

  it('image folders: imageSize comes from the model input; a zoo model needs it; scale and labelBase are checked', () => {
    const dir = path.dirname(campaign(''));
    fs.mkdirSync(path.join(dir, 'imgs', 'a'), { recursive: true });
    const spec = loadCampaignFile(campaign(`model: ${CASES}/05/model/model.json\ndataset: { name: images, dir: ${dir}/imgs, scale: minus-one-one }\n`)).spec;
    expect(spec.dataset.imageSize).toEqual([28, 28, 1]);
    expect(spec.dataset.scale).toBe('minus-one-one');
    expect(() => loadCampaignFile(campaign(`model: lenet5\ndataset: { name: images, dir: ${dir}/imgs }\n`))).toThrow(
      /dataset\.imageSize: needed: a zoo model has no input size of its own: give e\.g\. imageSize/,
    );
    expect(loadCampaignFile(campaign(`model: lenet5\ndataset: { name: images, dir: ${dir}/imgs, imageSize: [32, 32, 3] }\n`)).spec.dataset.imageSize).toEqual([
      32, 32, 3,
    ]);
    expect(() => loadCampaignFile(campaign(`model: lenet5\ndataset: { name: images, dir: ${dir}/nowhere, imageSize: [8, 8, 1] }\n`))).toThrow(
      /dataset\.dir: .*nowhere is not a folder/,
    );
    expect(() => loadCampaignFile(campaign(`model: mlp\ndataset: { name: fashion-mnist, labelBase: 2 }\n`))).toThrow(/dataset\.labelBase/);
    expect(() => loadCampaignFile(campaign(`model: mlp\ndataset: { name: fashion-mnist, scale: { mean: 0.5 } }\n`))).toThrow(/dataset\.scale/);
  });
});
