// Writes campaign/campaign.schema.json (JSON Schema for editors) from the zod schema.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { campaignSchema } from '../campaign/schema';

const schema = z.toJSONSchema(campaignSchema, { io: 'input' });
const out = path.resolve(__dirname, '..', '..', 'campaign', 'campaign.schema.json');
fs.writeFileSync(out, `${JSON.stringify({ title: 'prunewise campaign', ...schema }, null, 2)}\n`);
console.log(`wrote ${out}`);
