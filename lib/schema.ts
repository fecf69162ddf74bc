/**
 * Schemas use zod's tree-shakable API, `zod/mini` (functions instead of methods: a bundle keeps
 * only what it uses, about 20 KB instead of zod's whole 460 KB, which every cold start parsed).
 * The mini API has no messages until a locale is set; this sets zod's English one, the messages
 * the classic API gives. Every module that defines schemas imports this module for that, and
 * imports `zod/mini` itself as a namespace (`import * as z`): re-exporting the namespace from
 * here would make the bundler keep all of it.
 */
import { config } from 'zod/mini';
import { en } from 'zod/locales';

config(en());
