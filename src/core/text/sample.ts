import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { writeDirAtomic } from '../fsutil';
import { Rng } from '../rng';

/**
 * Templated support tickets of four intents, for a quick start and the
 * benchmark: each is an opening, a core sentence of its intent (with
 * synonyms drawn at random) and a closing shared by every intent, so a model
 * must read the core and not the boilerplate. Seeded; nothing is downloaded.
 */
const INTENTS: Record<string, { cores: string[]; slots: Record<string, string[]> }> = {
  billing: {
    cores: ['I was {charged} twice for my {plan} this month.', 'Can I get a {refund} for the {plan}?', 'My {card} was {charged} but the invoice is wrong.', 'Why did the price of my {plan} go up?', 'Please send me a {refund}, the payment was a mistake.'],
    slots: { charged: ['charged', 'billed', 'debited'], plan: ['subscription', 'plan', 'yearly membership', 'account'], refund: ['refund', 'reimbursement', 'credit back'], card: ['credit card', 'bank card', 'debit card'] },
  },
  shipping: {
    cores: ['Where is my {parcel}? It has not {arrived} yet.', 'The {parcel} was {delivered} to the wrong address.', 'Tracking shows my {parcel} stuck for a week.', 'How long does {delivery} take to my country?', 'My {parcel} arrived damaged and late.'],
    slots: { parcel: ['package', 'parcel', 'order', 'shipment'], arrived: ['arrived', 'shown up', 'been delivered'], delivered: ['delivered', 'dropped off', 'left'], delivery: ['delivery', 'shipping', 'the courier'] },
  },
  account: {
    cores: ['I cannot {login} to my account.', 'The {reset} email never comes.', 'My account was {locked} after too many attempts.', 'How do I change the {credential} on my profile?', 'Someone else may have {accessed} my account.'],
    slots: { login: ['log in', 'sign in', 'access'], reset: ['password reset', 'verification', 'confirmation'], locked: ['locked', 'suspended', 'disabled'], credential: ['password', 'email address', 'username'], accessed: ['accessed', 'used', 'hacked'] },
  },
  technical: {
    cores: ['The app {crashes} when I open the {screen}.', 'I get an error message on the {screen}.', 'The {screen} is very slow and {freezes}.', 'After the update the {screen} {crashes} on my phone.', 'Buttons on the {screen} do not respond.'],
    slots: { crashes: ['crashes', 'closes itself', 'stops working'], screen: ['settings page', 'dashboard', 'search screen', 'home screen'], freezes: ['freezes', 'hangs', 'stalls'] },
  },
};
const OPENINGS = ['Hello,', 'Hi team,', 'Good morning.', 'Hey there,', '', 'Dear support,'];
const CLOSINGS = ['Thanks.', 'Thank you for your help!', 'Please help me soon.', '', 'Regards, a customer', 'This is urgent.'];

/** Writes `perClass` tickets of each of `classes` intents (at most 4) as class folders of .txt files; returns the files by class. */
export async function makeTextSample(dir: string, o: { perClass?: number; classes?: number; seed?: number } = {}): Promise<Record<string, string[]>> {
  const rng = new Rng(o.seed ?? 7);
  const pick = <T>(a: T[]): T => a[Math.floor(rng.next() * a.length)]!;
  const intents = Object.keys(INTENTS).slice(0, Math.max(2, Math.min(4, o.classes ?? 4)));
  const files: Record<string, string[]> = {};
  await writeDirAtomic(dir, async (tmp) => {
    for (const intent of intents) {
      const { cores, slots } = INTENTS[intent]!;
      await fs.mkdir(path.join(tmp, intent));
      files[intent] = [];
      for (let i = 0; i < (o.perClass ?? 40); i++) {
        const core = pick(cores).replace(/\{(\w+)\}/g, (_, k: string) => pick(slots[k]!));
        const text = [pick(OPENINGS), core, pick(CLOSINGS)].filter(Boolean).join(' ');
        const name = `${intent}-${String(i).padStart(3, '0')}.txt`;
        await fs.writeFile(path.join(tmp, intent, name), `${text}\n`);
        files[intent].push(path.join(dir, intent, name));
      }
    }
  });
  return files;
}
