/** A vitest setup file: each test file's temporary folders go when its tests have run. */
import { afterAll } from 'vitest';
import { removeTempDirs } from './temp.js';

afterAll(removeTempDirs);
